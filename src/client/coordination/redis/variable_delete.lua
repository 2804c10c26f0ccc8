-- Deletes a variable's value (readers get an error until it is set again) and wakes them.
-- KEYS[1] the variable (hash). ARGV[1] the wake-up channel. Returns 1 if it existed.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'deleted')
redis.call('HDEL', KEYS[1], 'value')
redis.call('PUBLISH', ARGV[1], 'deleted')
return 1
