-- Removes a cancelled delivery's entry if no worker has begun it, atomically: a worker that
-- took the entry but has not begun it then finds it gone (begin.lua) and never runs it.
--
-- KEYS[1] task stream, KEYS[2] the queue's starts hash, KEYS[3] the delivery's entry_of key
-- ARGV[1] group, ARGV[2] the entry id the client was told at enqueue ('' if none)
--
-- Returns 1 when removed (nothing will run it, no completion will come), -1 when a worker
-- has begun it (it runs and reports), 0 when it was reported already or is not known.
local id = redis.call('GET', KEYS[3])
if id == 'done' then
  return 0
end
if not id then
  id = ARGV[2]
end
if id == '' then
  return 0
end
local ok, pending = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1], id, id, 1)
if ok and #pending > 0 then
  -- begin.lua records `consumer/delivery count` when a worker begins this delivery.
  local begun = pending[1][2] .. '/' .. tostring(pending[1][4])
  if redis.call('HGET', KEYS[2], id .. ':last') == begun then
    return -1
  end
  redis.call('XACK', KEYS[1], ARGV[1], id)
end
-- Its starts go with it, pending or not (its group may be gone with a deleted stream).
redis.call('HDEL', KEYS[2], id, id .. ':last')
redis.call('XDEL', KEYS[1], id)
redis.call('DEL', KEYS[3])
return 1
