-- Publishes a dataset: its encoded value and its type's name, with no expiry, atomically with
-- the check that the name is free.
-- KEYS[1] the value (string), KEYS[2] the type's name (string). ARGV[1] the type's name,
-- ARGV[2] the encoded value, ARGV[3] '1' to replace a dataset published there.
-- Returns {'published', ''} or {'taken', the stored type's name}.
if ARGV[3] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then
  return {'taken', redis.call('GET', KEYS[2]) or ''}
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[1])
return {'published', ''}
