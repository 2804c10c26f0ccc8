-- A function complete.lua and begin.lua share: redis_store.rs puts this file before each of
-- them (and once before both in complete_and_begin.lua), so that every script still reaches
-- Redis whole.
--
-- Where each of `ids` stands in the group's pending list: {owner, deliveries} while pending,
-- false when not (also without the stream or its group: deleted, or lost in a restart without
-- persistence; failing there would make the worker retry forever). One XPENDING over the
-- range the ids span, filtered to `consumer`, finds the caller's own entries (nearly always
-- all of them) instead of one XPENDING per id; only the ids it does not list are looked up
-- one by one. Returns nil and the error on any other failure.
--
-- complete_and_begin.lua sets `known_pending` to the answer of one pending_of over the ids of
-- both its parts (one XPENDING where there were two); pending_of then answers from it, and
-- asks Redis only when it is nil (always, in complete.lua and begin.lua on their own).
local known_pending = nil
local function pending_of(stream, group, consumer, ids)
  local found = {}
  if known_pending then
    for _, id in ipairs(ids) do
      found[id] = known_pending[id] or false
    end
    return found
  end
  -- The lowest and highest id as numbers and text, in locals (a table per id cost more).
  local low_ms, low_seq, low, high_ms, high_seq, high
  for _, id in ipairs(ids) do
    local ms, seq = string.match(id, '^(%d+)-(%d+)$')
    if ms then
      ms, seq = tonumber(ms), tonumber(seq)
      if low == nil or ms < low_ms or (ms == low_ms and seq < low_seq) then
        low_ms, low_seq, low = ms, seq, id
      end
      if high == nil or ms > high_ms or (ms == high_ms and seq > high_seq) then
        high_ms, high_seq, high = ms, seq, id
      end
    end
  end
  if low then
    local listed = redis.pcall('XPENDING', stream, group, low, high, #ids + 64, consumer)
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
