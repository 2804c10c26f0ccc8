-- Grants a lease on a lock or semaphore if fewer than its maximum are live, atomically.
-- KEYS[1] the name's sorted set of lease ids scored by expiry (ms, server clock),
-- KEYS[2] the name's recorded maximum.
-- ARGV[1] max leases, ARGV[2] lease timeout (ms), ARGV[3] the new lease's id (the same on
-- every try of one acquire: a try whose reply was lost after the lease was granted is
-- answered by the next try, which finds the lease live and renews it, instead of leaving
-- it held by nobody until it expires).
-- Returns {'granted', ''}, {'busy', ms until the earliest lease expires} or
-- {'max', the recorded maximum} when another maximum was recorded first.
local max = tonumber(ARGV[1])
local timeout = tonumber(ARGV[2])
if not max or max < 1 or not timeout or timeout < 1 or ARGV[3] == '' then
  return redis.error_reply('ERR taskweave lease_acquire: bad arguments')
end
local recorded = redis.call('GET', KEYS[2])
if recorded and tonumber(recorded) ~= max then
  return {'max', recorded}
end
if not recorded then
  redis.call('SET', KEYS[2], ARGV[1])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[3]) or redis.call('ZCARD', KEYS[1]) < max then
  redis.call('ZADD', KEYS[1], now + timeout, ARGV[3])
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[1], tonumber(last[2]) + 1)
  return {'granted', ''}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {'busy', tostring(math.max(1, tonumber(first[2]) - now))}
