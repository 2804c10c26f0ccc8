-- Deletes a variable's value (readers get an error until it is set again) and wakes them.
-- A variable that holds no value (never set, or deleted already) is left as it is: its
-- readers keep waiting for a set, as in process.
-- KEYS[1] the variable (hash). ARGV[1] the wake-up channel. Returns 1 if it had a value.
if redis.call('HGET', KEYS[1], 'state') ~= 'set' then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'deleted')
redis.call('HDEL', KEYS[1], 'value')
redis.call('PUBLISH', ARGV[1], 'deleted')
return 1
