-- Accepts a worker's outcome for one stream entry, atomically and only from the entry's
-- current owner (XACK alone does not check who acks).
--
-- KEYS[1] task stream, KEYS[2] the client's reply stream, KEYS[3] the task's result key,
-- KEYS[4] the queue's starts hash, KEYS[5] the delivery's entry_of key
-- ARGV[1] group, ARGV[2] entry id, ARGV[3] consumer, ARGV[4] rid, ARGV[5] status,
-- ARGV[6] body, ARGV[7] ttl in ms
--
-- Returns 1 when accepted, 0 when the entry is no longer pending (already completed,
-- dead-lettered, handed back or cancelled: a repeated call is harmless), -1 when another
-- consumer owns it now (it was reclaimed; this outcome is dropped).
--
-- An entry can also leave the pending list unacknowledged while a worker runs it: it was
-- trimmed or deleted, and a claim (XAUTOCLAIM, XCLAIM) dropped it; or its stream was lost.
-- Nobody else can run that delivery any more, so while its entry_of key still names this
-- entry (no other entry replaced it, it was not cancelled or reported) the outcome is
-- accepted: otherwise the client would find the entry missing and run the task again.
-- Without the stream or its group (deleted, or lost in a restart without persistence)
-- nothing is pending: XPENDING fails with NOGROUP, and failing here too would make the worker
-- retry forever, so report the entry gone instead.
local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if type(pending) == 'table' and pending.err then
  if not string.find(pending.err, 'NOGROUP', 1, true) then
    return pending
  end
  pending = {}
end
local deliveries
if #pending == 0 then
  if redis.call('GET', KEYS[5]) ~= ARGV[2] then
    return 0
  end
  deliveries = redis.call('HGET', KEYS[4], ARGV[2]) or '0'
elseif pending[1][2] ~= ARGV[3] then
  return -1
else
  deliveries = tostring(pending[1][4])
end
-- Result, notification and acknowledgement happen together or not at all: a crash can
-- never leave a written result with a pending entry that another worker would run again.
if ARGV[5] == 'ok' then
  redis.call('SET', KEYS[3], ARGV[6], 'PX', ARGV[7])
end
redis.call('XADD', KEYS[2], '*', 'rid', ARGV[4], 'status', ARGV[5], 'body', ARGV[6],
  'deliveries', deliveries)
redis.call('PEXPIRE', KEYS[2], ARGV[7])
-- The client's reconciliation pass must not take a reported delivery for a lost one.
redis.call('SET', KEYS[5], 'done', 'PX', ARGV[7])
if #pending > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[4], ARGV[2], ARGV[2] .. ':last')
return 1
