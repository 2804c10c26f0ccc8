-- Reads a variable. KEYS[1] the variable (hash: type, state, value). ARGV[1] the type's name.
-- Returns {'set', value}, {'unset', ''}, {'deleted', ''} or {'type', stored type}.
local stored = redis.call('HGET', KEYS[1], 'type')
if stored and stored ~= ARGV[1] then
  return {'type', stored}
end
if not stored then
  redis.call('HSET', KEYS[1], 'type', ARGV[1], 'state', 'unset')
  return {'unset', ''}
end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'set' then
  return {'set', redis.call('HGET', KEYS[1], 'value')}
end
return {state or 'unset', ''}
