-- Takes up to n items from the front of a queue if it holds at least `minimum`, atomically,
-- and keeps a receipt of what it took until the caller has the reply: a call retried with the
-- same receipt (its first reply lost to the network after the script ran) gets the same
-- items again instead of taking the next ones.
-- KEYS[1] the items (list), KEYS[2] the queue's meta (hash: type, capacity), KEYS[3] this
-- call's receipt (list; deleted by the caller once answered, else it expires).
-- ARGV[1] the item type's name, ARGV[2] n, ARGV[3] minimum (>= 1), ARGV[4] the wake-up
-- channel, ARGV[5] how long a receipt is kept (ms).
-- Returns {'items', {...}}, {'short', length}, {'type', stored type} or {'capacity', the
-- queue's bound} when n is above it (such a batch would never fill).
local n = tonumber(ARGV[2])
local minimum = tonumber(ARGV[3])
local keep = tonumber(ARGV[5])
if not n or n < 1 or not minimum or minimum < 1 or not keep or keep < 1 then
  return redis.error_reply('ERR taskweave queue_pop: bad arguments')
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  return {'items', redis.call('LRANGE', KEYS[3], 0, -1)}
end
local stored = redis.call('HGET', KEYS[2], 'type')
if stored and stored ~= ARGV[1] then
  return {'type', stored}
end
if not stored then
  redis.call('HSET', KEYS[2], 'type', ARGV[1])
end
local capacity = tonumber(redis.call('HGET', KEYS[2], 'capacity'))
if capacity and n > capacity then
  return {'capacity', tostring(capacity)}
end
local length = redis.call('LLEN', KEYS[1])
if length < minimum then
  return {'short', tostring(length)}
end
local items = redis.call('LPOP', KEYS[1], n)
for _, item in ipairs(items) do
  redis.call('RPUSH', KEYS[3], item)
end
redis.call('PEXPIRE', KEYS[3], keep)
redis.call('PUBLISH', ARGV[4], 'popped')
return {'items', items}
