-- Takes up to n items from the front of a queue if it holds at least `minimum`, atomically.
-- KEYS[1] the items (list), KEYS[2] the queue's meta (hash: type, capacity).
-- ARGV[1] the item type's name, ARGV[2] n, ARGV[3] minimum (>= 1), ARGV[4] the wake-up
-- channel. Returns {'items', {...}}, {'short', length} or {'type', stored type}.
local n = tonumber(ARGV[2])
local minimum = tonumber(ARGV[3])
if not n or n < 1 or not minimum or minimum < 1 then
  return redis.error_reply('ERR taskweave queue_pop: bad arguments')
end
local stored = redis.call('HGET', KEYS[2], 'type')
if stored and stored ~= ARGV[1] then
  return {'type', stored}
end
if not stored then
  redis.call('HSET', KEYS[2], 'type', ARGV[1])
end
local length = redis.call('LLEN', KEYS[1])
if length < minimum then
  return {'short', tostring(length)}
end
local items = redis.call('LPOP', KEYS[1], n)
redis.call('PUBLISH', ARGV[4], 'popped')
return {'items', items}
