-- Appends a batch of task entries to the stream, once per delivery: each delivery's
-- entry_of key records its entry's id in the same step, so an enqueue sent again after its
-- reply was lost (an unknown result) finds them and adds no second runnable copy. One call
-- per batch: a script call per entry cost a sixth of the throughput.
--
-- KEYS[1] task stream, KEYS[2..] the entry_of key of each delivery, in order
-- ARGV[1] ttl of the entry_of keys in ms, then per entry: how many arguments of further
-- fields follow its first three (twice the number of those fields), the values of the three
-- fields every entry has, in the order of `FIXED` below, then the further field-value pairs.
-- The three names are this script's constants, not arguments: an argument costs Redis more
-- (parsed, copied into Lua, converted back) than a name the script holds. Entries of format
-- version 2 have only those three: `v`, `rid` (which hand_back.lua and requeue.lua read) and
-- `e`, the other fields packed into one value (fewer items for Redis to parse, store and send
-- back to the worker). An entry of format version 1 (one field per field, which the
-- model-against-Redis tests still write) gives its count as -N, then N arguments of
-- field-value pairs and no values of the three.
--
-- Returns, per entry in order, the id of its delivery's entry (the one added now, or the one
-- added before), or 'done' when a worker has reported the delivery already.
-- The argument counts are checked before the first write: a bad batch fails having added
-- nothing, instead of half of it.
local FIXED = {'v', 'rid', 'e'}
-- How many of an entry's arguments after its count are values of the FIXED fields: all of
-- them, or none for a count below zero (an entry of format version 1: -N, then N arguments of
-- field-value pairs). Worked out inline below (no function call per entry).
local check = 2
for i = 2, #KEYS do
  local count = tonumber(ARGV[check])
  local fixed, further = #FIXED, count or 0
  if further < 0 then
    fixed, further = 0, -further
  end
  if count == nil or further % 2 ~= 0 or check + fixed + further > #ARGV then
    return redis.error_reply('ERR enqueue.lua: entry ' .. (i - 1) ..
      ' has a bad field count ' .. tostring(ARGV[check]))
  end
  check = check + fixed + further + 1
end
local ids = {}
-- Every entry_of key read in a few MGETs rather than one GET each (in slices: Lua's unpack
-- takes a few thousand values at most).
local known = {}
for first = 2, #KEYS, 512 do
  local values = redis.call('MGET', unpack(KEYS, first, math.min(first + 511, #KEYS)))
  for offset, value in ipairs(values) do
    known[first + offset - 1] = value
  end
end
-- A delivery twice in one batch gets its entry once, as it would in two calls.
local added = {}
local position = 2
for i = 2, #KEYS do
  local fixed, count = #FIXED, tonumber(ARGV[position])
  if count < 0 then
    fixed, count = 0, -count
  end
  local existing = added[KEYS[i]] or known[i]
  if existing then
    ids[#ids + 1] = existing
  else
    local p = position
    local fields = {}
    if fixed > 0 then
      fields = {FIXED[1], ARGV[p + 1], FIXED[2], ARGV[p + 2], FIXED[3], ARGV[p + 3]}
    end
    for extra = 1, count do
      fields[2 * fixed + extra] = ARGV[position + fixed + extra]
    end
    local id = redis.call('XADD', KEYS[1], '*', unpack(fields))
    redis.call('SET', KEYS[i], id, 'PX', ARGV[1])
    added[KEYS[i]] = id
    ids[#ids + 1] = id
  end
  position = position + fixed + count + 1
end
return ids
