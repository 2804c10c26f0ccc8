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

-- Where each of `ids` stands in the group's pending list: {owner, deliveries} while pending,
-- false when not (also without the stream or its group: deleted, or lost in a restart without
-- persistence; failing there would make the worker retry forever). One XPENDING over the
-- range the ids span, filtered to `consumer`, finds the caller's own entries (nearly always
-- all of them) instead of one XPENDING per id; only the ids it does not list are looked up
-- one by one. Returns nil and the error on any other failure. (The same function is in
-- complete.lua and begin.lua: each script stands alone.)
local function pending_of(stream, group, consumer, ids)
  local found = {}
  local low, high
  for _, id in ipairs(ids) do
    local ms, seq = string.match(id, '^(%d+)-(%d+)$')
    if ms then
      local at = {tonumber(ms), tonumber(seq), id}
      if low == nil or at[1] < low[1] or (at[1] == low[1] and at[2] < low[2]) then
        low = at
      end
      if high == nil or at[1] > high[1] or (at[1] == high[1] and at[2] > high[2]) then
        high = at
      end
    end
  end
  if low then
    local listed = redis.pcall('XPENDING', stream, group, low[3], high[3], #ids + 64, consumer)
    if type(listed) == 'table' and listed.err then
      if not string.find(listed.err, 'NOGROUP', 1, true) then
        return nil, listed
      end
      for _, id in ipairs(ids) do
        found[id] = false
      end
      return found
    end
    for _, row in ipairs(listed) do
      found[row[1]] = {row[2], row[4]}
    end
  end
  for _, id in ipairs(ids) do
    if found[id] == nil then
      local pending = redis.pcall('XPENDING', stream, group, id, id, 1)
      if type(pending) == 'table' and pending.err then
        if not string.find(pending.err, 'NOGROUP', 1, true) then
          return nil, pending
        end
        found[id] = false
      elseif #pending == 0 then
        found[id] = false
      else
        found[id] = {pending[1][2], pending[1][4]}
      end
    end
  end
  return found
end

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
