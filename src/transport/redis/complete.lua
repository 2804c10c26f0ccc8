-- Accepts a worker's outcomes for a batch of stream entries, atomically per entry and only
-- from the entry's current owner (XACK alone does not check who acks). One call for the
-- whole batch: a script call per entry cost a sixth of the Redis backend's throughput.
--
-- KEYS[1] task stream, KEYS[2] the queue's starts hash, then per outcome three keys: the
-- client's reply stream, the task's result key, the delivery's entry_of key
-- ARGV[1] group, ARGV[2] consumer, then per outcome seven arguments: entry id, rid, status,
-- body, ttl in ms, and when the worker started and finished the run (microseconds since the
-- Unix epoch on its clock; both empty when it did not run it). The reply then also names
-- the worker (the consumer) and carries the two times, for the client's task events (a
-- client older than these fields ignores them).
--
-- Returns, per outcome in order, 1 when accepted, 0 when the entry is no longer pending
-- (already completed, dead-lettered, handed back or cancelled: a repeated call is harmless),
-- -1 when another consumer owns it now (it was reclaimed; this outcome is dropped).
--
-- An entry can also leave the pending list unacknowledged while a worker runs it: it was
-- trimmed or deleted, and a claim (XAUTOCLAIM, XCLAIM) dropped it; or its stream was lost.
-- Nobody else can run that delivery any more, so while its entry_of key still names this
-- entry (no other entry replaced it, it was not cancelled or reported) the outcome is
-- accepted: otherwise the client would find the entry missing and run the task again.
--
-- Every argument is checked before the first write, so that a bad one (a ttl Redis cannot
-- use as an expiry, an unknown status, a reply key that is not a stream) fails the call
-- having changed nothing: failing half-way would leave replies written for entries still
-- pending, and the worker retrying forever.
local count = (#ARGV - 2) / 7
if count ~= math.floor(count) then
  return redis.error_reply('ERR complete.lua takes 7 arguments per outcome after 2, got ' ..
    #ARGV)
end
local statuses = {ok = true, failed = true, panicked = true, lost = true, rejected = true}
local stream_or_none = {}
for i = 0, count - 1 do
  local reply, id, status, ttl = KEYS[3 + 3 * i], ARGV[3 + 7 * i], ARGV[5 + 7 * i],
    ARGV[7 + 7 * i]
  local started, finished = ARGV[8 + 7 * i], ARGV[9 + 7 * i]
  if (started == '') ~= (finished == '') or (started ~= '' and
      (tonumber(started) == nil or tonumber(finished) == nil)) then
    return redis.error_reply('ERR complete.lua: entry ' .. id .. ' has run times ' ..
      started .. ' and ' .. finished .. ', not two numbers or two empty arguments')
  end
  local ms = tonumber(ttl)
  if ms == nil or ms < 1 or ms > 31536000000 or ms ~= math.floor(ms) then
    return redis.error_reply('ERR complete.lua: entry ' .. id .. ' has ttl ' .. ttl ..
      ', not a whole number of ms from 1 to 31536000000')
  end
  if not statuses[status] then
    return redis.error_reply('ERR complete.lua: entry ' .. id .. ' has unknown status ' .. status)
  end
  if stream_or_none[reply] == nil then
    local kind = redis.call('TYPE', reply)['ok']
    stream_or_none[reply] = (kind == 'stream' or kind == 'none')
  end
  if not stream_or_none[reply] then
    return redis.error_reply('ERR complete.lua: entry ' .. id .. ' has reply key ' .. reply ..
      ', which holds something other than a stream')
  end
end
local out = {}
local expiring = nil
-- Acknowledged, deleted and forgotten together at the end: one XACK, XDEL and HDEL for the
-- batch instead of one of each per entry (XDEL still costs 3-4 us per id on Redis 7.0).
local acked, deleted, forgotten = {}, {}, {}
local accepted = {}
for i = 0, count - 1 do
  local reply, result, entry_of = KEYS[3 + 3 * i], KEYS[4 + 3 * i], KEYS[5 + 3 * i]
  local id, rid, status, body, ttl = ARGV[3 + 7 * i], ARGV[4 + 7 * i], ARGV[5 + 7 * i],
    ARGV[6 + 7 * i], ARGV[7 + 7 * i]
  local started, finished = ARGV[8 + 7 * i], ARGV[9 + 7 * i]
  -- Without the stream or its group (deleted, or lost in a restart without persistence)
  -- nothing is pending: XPENDING fails with NOGROUP, and failing here too would make the
  -- worker retry forever, so treat the entry as not pending instead.
  local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if type(pending) == 'table' and pending.err then
    if not string.find(pending.err, 'NOGROUP', 1, true) then
      return pending
    end
    pending = {}
  end
  local deliveries
  if accepted[id] then
    -- Reported earlier in this batch: no longer pending and its count of starts forgotten,
    -- as after a call of its own (the acknowledgement and the HDEL wait for the batch's end).
    pending = {}
    if redis.call('GET', entry_of) == id then
      deliveries = '0'
    end
  elseif #pending == 0 then
    if redis.call('GET', entry_of) == id then
      deliveries = redis.call('HGET', KEYS[2], id) or '0'
    end
  elseif pending[1][2] == ARGV[2] then
    deliveries = tostring(pending[1][4])
  end
  if deliveries == nil then
    out[#out + 1] = (#pending == 0) and 0 or -1
  else
    -- Result, notification and acknowledgement happen together or not at all: a crash can
    -- never leave a written result with a pending entry that another worker would run again.
    if status == 'ok' then
      redis.call('SET', result, body, 'PX', ttl)
    end
    if started == '' then
      redis.call('XADD', reply, '*', 'rid', rid, 'status', status, 'body', body,
        'deliveries', deliveries)
    else
      redis.call('XADD', reply, '*', 'rid', rid, 'status', status, 'body', body,
        'deliveries', deliveries, 'worker', ARGV[2], 'started_us', started,
        'finished_us', finished)
    end
    -- One expiry per reply stream and ttl in a run of outcomes for the same client.
    local expiry = reply .. '\0' .. ttl
    if expiring ~= expiry then
      redis.call('PEXPIRE', reply, ttl)
      expiring = expiry
    end
    -- The client's reconciliation pass must not take a reported delivery for a lost one.
    redis.call('SET', entry_of, 'done', 'PX', ttl)
    if #pending > 0 then
      acked[#acked + 1] = id
    end
    deleted[#deleted + 1] = id
    forgotten[#forgotten + 1] = id
    forgotten[#forgotten + 1] = id .. ':last'
    accepted[id] = true
    out[#out + 1] = 1
  end
end
-- In slices: Lua's unpack takes a few thousand values at most.
local function in_slices(command, key, prefix, values)
  for first = 1, #values, 512 do
    local last = math.min(first + 511, #values)
    if prefix then
      redis.call(command, key, prefix, unpack(values, first, last))
    else
      redis.call(command, key, unpack(values, first, last))
    end
  end
end
in_slices('XACK', KEYS[1], ARGV[1], acked)
in_slices('XDEL', KEYS[1], nil, deleted)
in_slices('HDEL', KEYS[2], nil, forgotten)
return out
