-- Puts dead letters back on the task stream (an operator's requeue): each one's original
-- fields are added as a new entry, so a worker takes it and runs it with a fresh count of
-- starts; the dead letter is deleted in the same step. The delivery's entry_of key, if it
-- still exists (its client may yet read the delivery), follows the entry to its new id, as
-- hand_back.lua does, so that the client's reconciliation finds it queued, not lost.
--
-- KEYS[1] task stream, KEYS[2] dead-letter stream
-- ARGV[1] group, ARGV[2] the prefix of entry_of keys, ARGV[3..] dead-letter ids
--
-- Returns, per dead-letter id in order, the id of its new task entry, or '' when there was
-- no such dead letter, or it carried no original fields (it is left where it is then).
local dead_fields = {dead_reason = true, dead_entry = true, dead_deliveries = true,
  dead_worker = true}
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'stream' and kind ~= 'none' then
  return redis.error_reply('ERR requeue.lua: the task key ' .. KEYS[1] ..
    ' holds something other than a stream')
end
-- A stream deleted (or lost in a restart) gets its group back, from the start, so that
-- workers see the entry.
local created = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
if type(created) == 'table' and created.err and
    not string.find(created.err, 'BUSYGROUP', 1, true) then
  return created
end
local out = {}
for i = 3, #ARGV do
  local new = ''
  local found = redis.call('XRANGE', KEYS[2], ARGV[i], ARGV[i])
  if #found > 0 and type(found[1][2]) == 'table' then
    local fields = found[1][2]
    -- dead_letter.lua writes its own four fields first, then the original ones.
    local first = 1
    while first < #fields and dead_fields[fields[first]] do
      first = first + 2
    end
    if first < #fields then
      local original = {}
      local rid = nil
      for j = first, #fields - 1, 2 do
        original[#original + 1] = fields[j]
        original[#original + 1] = fields[j + 1]
        if fields[j] == 'rid' and rid == nil then
          rid = fields[j + 1]
        end
      end
      new = redis.call('XADD', KEYS[1], '*', unpack(original))
      if rid then
        local key = ARGV[2] .. rid
        if redis.call('EXISTS', key) == 1 then
          redis.call('SET', key, new, 'KEEPTTL')
        end
      end
      redis.call('XDEL', KEYS[2], ARGV[i])
    end
  end
  out[#out + 1] = new
end
return out
