-- Appends a message to a topic's stream, atomically with the type check.
-- KEYS[1] the stream, KEYS[2] the topic's type key. ARGV[1] the type's name, ARGV[2] the
-- encoded message, ARGV[3] about how many messages to keep.
-- Returns {'logged', id} or {'type', stored type}.
local stored = redis.call('GET', KEYS[2])
if stored and stored ~= ARGV[1] then
  return {'type', stored}
end
if not stored then
  redis.call('SET', KEYS[2], ARGV[1])
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'm', ARGV[2])
return {'logged', id}
