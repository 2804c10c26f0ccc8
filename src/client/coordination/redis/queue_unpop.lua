-- Puts items taken by a call whose caller went away back at the front of the queue, in
-- their order, and drops that call's receipt. KEYS[1] the items (list), KEYS[2] the call's
-- receipt. ARGV[1] the wake-up channel, ARGV[2..] the items.
for i = #ARGV, 2, -1 do
  redis.call('LPUSH', KEYS[1], ARGV[i])
end
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[1], 'pushed')
return #ARGV - 1
