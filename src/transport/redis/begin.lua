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
-- The markers and counts of the whole batch in one HMGET and the changed ones in one HSET
-- (was an HMGET and an HSET per entry: each `redis.call` costs more than the command).
local fields, owned = {}, {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local state = pending[id]
  if state and state[1] == ARGV[2] then
    owned[#owned + 1] = i
    fields[#fields + 1] = id .. ':last'
    fields[#fields + 1] = id
  end
end
-- In slices (of whole pairs): Lua's unpack takes a few thousand values at most.
local known = {}
for first = 1, #fields, 512 do
  local values = redis.call('HMGET', KEYS[2], unpack(fields, first, math.min(first + 511, #fields)))
  for offset, value in ipairs(values) do
    known[first + offset - 1] = value
  end
end
local out, starts_of, changes = {}, {}, {}
local next_owned = 1
for i = 3, #ARGV do
  local id = ARGV[i]
  local state = pending[id]
  if not state then
    out[#out + 1] = -1
  elseif state[1] ~= ARGV[2] then
    out[#out + 1] = -2
  else
    local at = 2 * next_owned - 1
    next_owned = next_owned + 1
    local marker = ARGV[2] .. '/' .. tostring(state[2])
    -- An id twice in one call counts once, as in two calls.
    local starts = starts_of[id]
    if starts == nil then
      starts = tonumber(known[at + 1] or '0') or 0
      if known[at] ~= marker then
        starts = starts + 1
        changes[#changes + 1] = id .. ':last'
        changes[#changes + 1] = marker
        changes[#changes + 1] = id
        changes[#changes + 1] = starts
      end
      starts_of[id] = starts
    end
    out[#out + 1] = starts
  end
end
for first = 1, #changes, 512 do
  redis.call('HSET', KEYS[2], unpack(changes, first, math.min(first + 511, #changes)))
end
return out
