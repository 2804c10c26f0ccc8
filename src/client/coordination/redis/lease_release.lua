-- Ends a lease and wakes the name's waiters, atomically.
-- KEYS[1] the name's sorted set of leases. ARGV[1] lease id, ARGV[2] the wake-up channel.
-- Returns 1 when the lease was held, 0 when it was not (released before, or expired).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
if removed == 1 then
  redis.call('PUBLISH', ARGV[2], 'released')
end
return removed
