-- Sets an event, moves its generation on and wakes its waiters. KEYS[1] the event's flag,
-- KEYS[2] its generation (a count of sets: a waiter that saw the event unset returns once the
-- count moved, even if the event was cleared again before it looked). ARGV[1] the wake-up
-- channel.
redis.call('SET', KEYS[1], '1')
redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[1], 'set')
return 1
