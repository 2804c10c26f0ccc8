-- Appends one task entry to the stream, once per delivery: the delivery's `entry_of` key
-- records the entry's id in the same step, so an enqueue sent again after its reply was lost
-- (an unknown result) finds it and adds no second runnable copy.
--
-- KEYS[1] task stream, KEYS[2] the delivery's entry_of key
-- ARGV[1] ttl of the entry_of key in ms, ARGV[2..] the entry's field-value pairs
--
-- Returns the id of the delivery's entry (the one added now, or the one added before), or
-- 'done' when a worker has reported the delivery already.
local existing = redis.call('GET', KEYS[2])
if existing then
  return existing
end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
redis.call('SET', KEYS[2], id, 'PX', ARGV[1])
return id
