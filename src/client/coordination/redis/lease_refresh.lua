-- Extends a live lease by its timeout, atomically with the check that it is still held.
-- KEYS[1] the name's sorted set of leases. ARGV[1] lease timeout (ms), ARGV[2] lease id.
-- Returns 1 when extended, 0 when the lease is not held (released, or expired).
local timeout = tonumber(ARGV[1])
if not timeout or timeout < 1 then
  return redis.error_reply('ERR taskweave lease_refresh: bad arguments')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', now + timeout, ARGV[2])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], tonumber(last[2]) + 1)
return 1
