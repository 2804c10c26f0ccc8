-- Sets an event and wakes its waiters. KEYS[1] the event's key. ARGV[1] the wake-up channel.
redis.call('SET', KEYS[1], '1')
redis.call('PUBLISH', ARGV[1], 'set')
return 1
