-- Where a new subscription starts: the id of the topic's last message (or 0-0), atomically
-- with the type check. KEYS[1] the stream, KEYS[2] the topic's type key. ARGV[1] the type's
-- name. Returns {'from', id} or {'type', stored type}.
local stored = redis.call('GET', KEYS[2])
if stored and stored ~= ARGV[1] then
  return {'type', stored}
end
if not stored then
  redis.call('SET', KEYS[2], ARGV[1])
end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last == 0 then
  return {'from', '0-0'}
end
return {'from', last[1][1]}
