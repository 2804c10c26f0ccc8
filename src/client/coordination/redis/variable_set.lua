-- Replaces a variable's value and wakes its readers, atomically with the type check.
-- KEYS[1] the variable (hash: type, state, value). ARGV[1] the type's name, ARGV[2] the
-- encoded value, ARGV[3] the wake-up channel. Returns {'set', ''} or {'type', stored type}.
local stored = redis.call('HGET', KEYS[1], 'type')
if stored and stored ~= ARGV[1] then
  return {'type', stored}
end
redis.call('HSET', KEYS[1], 'type', ARGV[1], 'state', 'set', 'value', ARGV[2])
redis.call('PUBLISH', ARGV[3], 'set')
return {'set', ''}
