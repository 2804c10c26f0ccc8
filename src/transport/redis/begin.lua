-- Records that the caller starts running an entry it owns, once per delivery, and returns
-- how many deliveries of the entry have started (this one included). Poison detection counts
-- these starts, not deliveries: a delivery whose reply was lost, or a claim nobody acted on,
-- never started anything and must not count as a crash.
--
-- KEYS[1] task stream, KEYS[2] the queue's starts hash
-- ARGV[1] group, ARGV[2] entry id, ARGV[3] consumer
--
-- Returns the number of starts, -1 when the entry is no longer pending, -2 when another
-- consumer owns it now. A repeated call for the same delivery (after a lost reply) counts
-- once.
-- Without the stream or its group (deleted, or lost in a restart without persistence)
-- nothing is pending: XPENDING fails with NOGROUP, and failing here too would make the worker
-- retry forever, so report the entry gone instead.
local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if type(pending) == 'table' and pending.err then
  if string.find(pending.err, 'NOGROUP', 1, true) then
    return -1
  end
  return pending
end
if #pending == 0 then
  return -1
end
if pending[1][2] ~= ARGV[3] then
  return -2
end
local marker = ARGV[3] .. '/' .. tostring(pending[1][4])
local last = redis.call('HGET', KEYS[2], ARGV[2] .. ':last')
if last == marker then
  return tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
end
redis.call('HSET', KEYS[2], ARGV[2] .. ':last', marker)
return redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
