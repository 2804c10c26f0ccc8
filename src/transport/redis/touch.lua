-- Resets the idle time of entries the caller still owns (the tasks it is running), so that
-- other workers do not reclaim them. Entries another consumer owns by now are left alone.
--
-- KEYS[1] task stream
-- ARGV[1] group, ARGV[2] consumer, ARGV[3..] entry ids
--
-- Returns how many entries were touched.
local touched = 0
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #pending > 0 and pending[1][2] == ARGV[2] then
    -- JUSTID: the delivery counter is not incremented.
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    touched = touched + 1
  end
end
return touched
