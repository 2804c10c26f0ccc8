-- Accepts a worker's outcome for one stream entry, atomically and only from the entry's
-- current owner (XACK alone does not check who acks).
--
-- KEYS[1] task stream, KEYS[2] the client's reply stream, KEYS[3] the task's result key,
-- KEYS[4] the queue's starts hash, KEYS[5] the delivery's entry_of key
-- ARGV[1] group, ARGV[2] entry id, ARGV[3] consumer, ARGV[4] rid, ARGV[5] status,
-- ARGV[6] body, ARGV[7] ttl in ms
--
-- Returns 1 when accepted, 0 when the entry is no longer pending (already completed,
-- dead-lettered or handed back: a repeated call is harmless), -1 when another consumer owns
-- it now (it was reclaimed; this outcome is dropped).
-- Without the stream or its group (deleted, or lost in a restart without persistence)
-- nothing is pending: XPENDING fails with NOGROUP, and failing here too would make the worker
-- retry forever, so report the entry gone instead.
local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if type(pending) == 'table' and pending.err then
  if string.find(pending.err, 'NOGROUP', 1, true) then
    return 0
  end
  return pending
end
if #pending == 0 then
  return 0
end
if pending[1][2] ~= ARGV[3] then
  return -1
end
-- Result, notification and acknowledgement happen together or not at all: a crash can
-- never leave a written result with a pending entry that another worker would run again.
if ARGV[5] == 'ok' then
  redis.call('SET', KEYS[3], ARGV[6], 'PX', ARGV[7])
end
redis.call('XADD', KEYS[2], '*', 'rid', ARGV[4], 'status', ARGV[5], 'body', ARGV[6],
  'deliveries', tostring(pending[1][4]))
redis.call('PEXPIRE', KEYS[2], ARGV[7])
-- The client's reconciliation pass must not take a reported delivery for a lost one.
redis.call('SET', KEYS[5], 'done', 'PX', ARGV[7])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[4], ARGV[2], ARGV[2] .. ':last')
return 1
