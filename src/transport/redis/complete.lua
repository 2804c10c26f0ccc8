-- Accepts a worker's outcomes for a batch of stream entries, atomically per entry and only
-- from the entry's current owner (XACK alone does not check who acks). One call for the
-- whole batch: a script call per entry cost a sixth of the Redis backend's throughput.
--
-- KEYS[1] task stream, KEYS[2] the queue's starts hash, then per outcome three keys: the
-- client's reply stream, the task's result key, the delivery's entry_of key
-- ARGV[1] group, ARGV[2] consumer, then per outcome nine arguments: entry id, rid, status,
-- body, ttl in ms, when the worker started and finished the run (microseconds since the
-- Unix epoch on its clock; both empty when it did not run it), whether to store the
-- output under the result key ('1', or '0' when the client keeps a small output from the
-- reply itself: the entry's `inline_max`), and the reply's fields packed by the worker
-- (protocol.rs `pack_fields`; '' for a client older than entry format 2, which reads one
-- field per field). The reply then also names the worker (the
-- consumer) and carries the two times, for the client's task events (a client older than
-- these fields ignores them), and says `stored` '0' when the result key was not written.
-- A packed reply is `deliveries` (which only this script knows) and `p`, the packed fields.
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
--
-- `pending_of` is defined in pending_of.lua, which redis_store.rs puts before this file.

local count = (#ARGV - 2) / 9
if count ~= math.floor(count) then
  return redis.error_reply('ERR complete.lua takes 9 arguments per outcome after 2, got ' ..
    #ARGV)
end
local statuses = {ok = true, failed = true, panicked = true, lost = true, rejected = true}
local stream_or_none = {}
for i = 0, count - 1 do
  local reply, id, status, ttl = KEYS[3 + 3 * i], ARGV[3 + 9 * i], ARGV[5 + 9 * i],
    ARGV[7 + 9 * i]
  local started, finished, store = ARGV[8 + 9 * i], ARGV[9 + 9 * i], ARGV[10 + 9 * i]
  if store ~= '1' and store ~= '0' then
    return redis.error_reply('ERR complete.lua: entry ' .. id .. ' has store ' .. store ..
      ', not 1 or 0')
  end
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
local ids = {}
for i = 0, count - 1 do
  ids[#ids + 1] = ARGV[3 + 9 * i]
end
local pending, problem = pending_of(KEYS[1], ARGV[1], ARGV[2], ids)
if not pending then
  return problem
end
local out = {}
local expiring_reply, expiring_ttl = nil, nil
-- Acknowledged, deleted and forgotten together at the end: one XACK, XDEL and HDEL for the
-- batch instead of one of each per entry (XDEL still costs 3-4 us per id on Redis 7.0).
local acked, deleted, forgotten = {}, {}, {}
local accepted = {}
for i = 0, count - 1 do
  local reply, result, entry_of = KEYS[3 + 3 * i], KEYS[4 + 3 * i], KEYS[5 + 3 * i]
  local id, rid, status, body, ttl = ARGV[3 + 9 * i], ARGV[4 + 9 * i], ARGV[5 + 9 * i],
    ARGV[6 + 9 * i], ARGV[7 + 9 * i]
  local started, finished, store = ARGV[8 + 9 * i], ARGV[9 + 9 * i], ARGV[10 + 9 * i]
  local packed = ARGV[11 + 9 * i]
  local state = pending[id]
  local deliveries
  if accepted[id] then
    -- Reported earlier in this batch: no longer pending and its count of starts forgotten,
    -- as after a call of its own (the acknowledgement and the HDEL wait for the batch's end).
    state = false
    if redis.call('GET', entry_of) == id then
      deliveries = '0'
    end
  elseif not state then
    if redis.call('GET', entry_of) == id then
      deliveries = redis.call('HGET', KEYS[2], id) or '0'
    end
  elseif state[1] == ARGV[2] then
    deliveries = tostring(state[2])
  end
  if deliveries == nil then
    out[#out + 1] = state and -1 or 0
  else
    -- Result, notification and acknowledgement happen together or not at all: a crash can
    -- never leave a written result with a pending entry that another worker would run again.
    -- The output is written once where it can be: in the reply alone when the client keeps
    -- it, else also under its result key (dependents and other clients read it there).
    if status == 'ok' and store == '1' then
      redis.call('SET', result, body, 'PX', ttl)
    end
    if packed ~= '' then
      -- The reply's other fields, packed by the worker (its client reads them packed).
      redis.call('XADD', reply, '*', 'deliveries', deliveries, 'p', packed)
    else
      local fields = {'rid', rid, 'status', status, 'body', body, 'deliveries', deliveries}
      if started ~= '' then
        fields[9], fields[10], fields[11], fields[12] = 'worker', ARGV[2], 'started_us', started
        fields[13], fields[14] = 'finished_us', finished
      end
      if status == 'ok' and store ~= '1' then
        fields[#fields + 1] = 'stored'
        fields[#fields + 1] = '0'
      end
      redis.call('XADD', reply, '*', unpack(fields))
    end
    -- One expiry per reply stream and ttl in a run of outcomes for the same client.
    if expiring_reply ~= reply or expiring_ttl ~= ttl then
      redis.call('PEXPIRE', reply, ttl)
      expiring_reply, expiring_ttl = reply, ttl
    end
    -- The client's reconciliation pass must not take a reported delivery for a lost one.
    redis.call('SET', entry_of, 'done', 'PX', ttl)
    if state then
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
