-- Says where one delivery stands, for the client's reconciliation pass.
--
-- KEYS[1] task stream, KEYS[2] the delivery's entry_of key
-- ARGV[1] group, ARGV[2] the entry id the client was told at enqueue ('' if none), used when
-- the entry_of key has expired
--
-- Returns 'done' when a worker reported it, 'queued' while its entry is in the stream or
-- pending with a worker, 'missing' when nothing will ever run it (trimmed, deleted, or lost
-- in a server restart).
local id = redis.call('GET', KEYS[2])
if id == 'done' then
  return 'done'
end
if not id then
  id = ARGV[2]
end
if id == '' then
  return 'missing'
end
if #redis.call('XRANGE', KEYS[1], id, id) > 0 then
  return 'queued'
end
-- Trimmed while a worker holds it: the worker still has its fields and reports it; if the
-- worker died, XAUTOCLAIM drops the entry and a later pass finds it missing.
local ok, pending = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1], id, id, 1)
if ok and #pending > 0 then
  return 'queued'
end
return 'missing'
