-- Appends an item to a queue if it has room, atomically with the type and bound checks.
-- KEYS[1] the items (list), KEYS[2] the queue's meta (hash: type, capacity).
-- ARGV[1] the item type's name, ARGV[2] the bound asked for ('' for the queue's own),
-- ARGV[3] the wake-up channel, ARGV[4] the encoded item.
-- Returns {'pushed', ''}, {'full', capacity}, {'type', stored type} or
-- {'capacity', stored capacity}.
local stored = redis.call('HGET', KEYS[2], 'type')
if stored and stored ~= ARGV[1] then
  return {'type', stored}
end
local capacity = redis.call('HGET', KEYS[2], 'capacity')
if ARGV[2] ~= '' then
  if not tonumber(ARGV[2]) then
    return redis.error_reply('ERR taskweave queue_push: bad capacity')
  end
  if capacity and capacity ~= ARGV[2] then
    return {'capacity', capacity}
  end
end
if not stored then
  redis.call('HSET', KEYS[2], 'type', ARGV[1])
end
if ARGV[2] ~= '' and not capacity then
  redis.call('HSET', KEYS[2], 'capacity', ARGV[2])
  capacity = ARGV[2]
end
if capacity and redis.call('LLEN', KEYS[1]) >= tonumber(capacity) then
  return {'full', capacity}
end
redis.call('RPUSH', KEYS[1], ARGV[4])
redis.call('PUBLISH', ARGV[3], 'pushed')
return {'pushed', ''}
