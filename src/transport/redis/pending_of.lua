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
