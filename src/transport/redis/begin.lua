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
--
-- `pending_of` is defined in pending_of.lua, which redis_store.rs puts before this file.

local ids = {}
for i = 3, #ARGV do
  ids[#ids + 1] = ARGV[i]
end
local pending, problem = pending_of(KEYS[1], ARGV[1], ARGV[2], ids)
if not pending then
  return problem
end
local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local state = pending[id]
  if not state then
    out[#out + 1] = -1
  elseif state[1] ~= ARGV[2] then
    out[#out + 1] = -2
  else
    local marker = ARGV[2] .. '/' .. tostring(state[2])
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
