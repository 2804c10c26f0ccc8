-- Gives entries the caller owns but has not started back to the queue (a worker shutting
-- down, or passing on a task it does not run): each is re-added as a new entry, then
-- acknowledged and deleted, so another worker takes it at once and its delivery count
-- starts again. The delivery's entry_of key, if it has one, follows the entry to its new
-- id, and so does its count of starts (less this delivery's own start, if `begin` counted
-- it: the caller did not run it), so that handing an entry back again and again never
-- resets poison detection.
--
-- KEYS[1] task stream, KEYS[2] the queue's starts hash
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] the prefix of entry_of keys, ARGV[4..] entry ids
--
-- Returns how many entries were handed back.
local handed = 0
for i = 4, #ARGV do
  -- Without the stream or its group (deleted, or lost in a restart without persistence)
  -- nothing is pending: XPENDING fails with NOGROUP, and failing here too would make the worker
  -- retry forever, so report the entry gone instead.
  local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if type(pending) == 'table' and pending.err then
    if string.find(pending.err, 'NOGROUP', 1, true) then
      return handed
    end
    return pending
  end
  if #pending > 0 and pending[1][2] == ARGV[2] then
    local found = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
    if #found > 0 and type(found[1][2]) == 'table' and #found[1][2] > 0 then
      local fields = found[1][2]
      local id = redis.call('XADD', KEYS[1], '*', unpack(fields))
      local starts = tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0')
      local marker = ARGV[2] .. '/' .. tostring(pending[1][4])
      if starts > 0 and redis.call('HGET', KEYS[2], ARGV[i] .. ':last') == marker then
        starts = starts - 1
      end
      if starts > 0 then
        redis.call('HSET', KEYS[2], id, starts, id .. ':last', '')
      end
      for j = 1, #fields - 1, 2 do
        if fields[j] == 'rid' then
          local key = ARGV[3] .. fields[j + 1]
          if redis.call('EXISTS', key) == 1 then
            redis.call('SET', key, id, 'KEEPTTL')
          end
          break
        end
      end
    end
    redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
    redis.call('XDEL', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i], ARGV[i] .. ':last')
    handed = handed + 1
  end
end
return handed
