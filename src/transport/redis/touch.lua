-- Resets the idle time of entries the caller still owns (the tasks it is running), so that
-- other workers do not reclaim them. Entries another consumer owns by now are left alone.
--
-- KEYS[1] task stream, KEYS[2] the queue's starts hash
-- ARGV[1] group, ARGV[2] consumer, ARGV[3..] entry ids
--
-- Returns how many entries were touched. An owned pending entry whose stream entry was
-- deleted (by a client that closed) is dropped from the pending list instead, as XCLAIM does.
local touched = 0
for i = 3, #ARGV do
  -- Without the stream or its group (deleted, or lost in a restart without persistence)
  -- nothing is pending: XPENDING fails with NOGROUP, and failing here too would make the worker
  -- retry forever, so report the entry gone instead.
  local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if type(pending) == 'table' and pending.err then
    if string.find(pending.err, 'NOGROUP', 1, true) then
      return touched
    end
    return pending
  end
  if #pending > 0 and pending[1][2] == ARGV[2] then
    -- JUSTID: the delivery counter is not incremented. An entry deleted from the stream is
    -- not claimed but dropped from the pending list (Redis 7): it was not touched.
    local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    if #claimed > 0 then
      touched = touched + 1
    else
      redis.call('HDEL', KEYS[2], ARGV[i], ARGV[i] .. ':last')
    end
  end
end
return touched
