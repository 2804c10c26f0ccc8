-- Records that the caller starts running entries it owns, once per delivery, and returns for
-- each how many deliveries of the entry have started (this one included). Poison detection
-- counts these starts, not deliveries: a delivery whose reply was lost, or a claim nobody
-- acted on, never started anything and must not count as a crash. One call for a whole batch
-- of entries: a script call per entry cost a sixth of the Redis backend's throughput.
--
-- KEYS[1] task stream, KEYS[2] the queue's starts hash
-- ARGV[1] group, ARGV[2] consumer, ARGV[3..] entry ids
--
-- Returns, per entry in order, the number of starts, -1 when the entry is no longer pending,
-- -2 when another consumer owns it now. A repeated call for the same delivery (after a lost
-- reply) counts once.
local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  -- Without the stream or its group (deleted, or lost in a restart without persistence)
  -- nothing is pending: XPENDING fails with NOGROUP, and failing here too would make the
  -- worker retry forever, so report the entry gone instead.
  local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if type(pending) == 'table' and pending.err then
    if not string.find(pending.err, 'NOGROUP', 1, true) then
      return pending
    end
    out[#out + 1] = -1
  elseif #pending == 0 then
    out[#out + 1] = -1
  elseif pending[1][2] ~= ARGV[2] then
    out[#out + 1] = -2
  else
    local marker = ARGV[2] .. '/' .. tostring(pending[1][4])
    -- The marker and the count in one read and one write (was HGET, HSET and HINCRBY).
    local known = redis.call('HMGET', KEYS[2], id .. ':last', id)
    local starts = tonumber(known[2] or '0') or 0
    if known[1] ~= marker then
      starts = starts + 1
      redis.call('HSET', KEYS[2], id .. ':last', marker, id, starts)
    end
    out[#out + 1] = starts
  end
end
return out
