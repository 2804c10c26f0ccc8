-- Moves one stream entry to the dead-letter stream, only if the caller owns it, and tells
-- the submitting client when there is one to tell.
--
-- KEYS[1] task stream, KEYS[2] dead-letter stream, KEYS[3] the client's reply stream, or the
-- task stream itself when there is no client to tell (nothing is written to it then),
-- KEYS[4] the queue's starts hash, KEYS[5] the delivery's entry_of key (the task stream when
-- there is no client to tell; nothing is written to it then)
-- ARGV[1] group, ARGV[2] entry id, ARGV[3] consumer, ARGV[4] reason, ARGV[5] rid ('' when
-- there is no client to tell), ARGV[6] status, ARGV[7] body, ARGV[8] ttl in ms, ARGV[9] (optional)
-- the dead-letter stream's cap: it is trimmed to about this many entries (XADD MAXLEN ~), the
-- oldest first; 10000 when absent
--
-- Returns 1 when moved, 0 when the entry is no longer pending, -1 when another consumer owns
-- it now.
--
-- The arguments are checked before the first write (see complete.lua): a bad one fails the
-- call having changed nothing.
if ARGV[5] ~= '' then
  local ms = tonumber(ARGV[8])
  if ms == nil or ms < 1 or ms > 31536000000 or ms ~= math.floor(ms) then
    return redis.error_reply('ERR dead_letter.lua: entry ' .. ARGV[2] .. ' has ttl ' ..
      ARGV[8] .. ', not a whole number of ms from 1 to 31536000000')
  end
  local kind = redis.call('TYPE', KEYS[3])['ok']
  if kind ~= 'stream' and kind ~= 'none' then
    return redis.error_reply('ERR dead_letter.lua: entry ' .. ARGV[2] .. ' has reply key ' ..
      KEYS[3] .. ', which holds something other than a stream')
  end
end
local cap = 10000
if ARGV[9] ~= nil then
  cap = tonumber(ARGV[9])
  if cap == nil or cap < 1 or cap ~= math.floor(cap) then
    return redis.error_reply('ERR dead_letter.lua: the dead-letter cap ' .. ARGV[9] ..
      ' is not a whole number from 1')
  end
end
local dead = redis.call('TYPE', KEYS[2])['ok']
if dead ~= 'stream' and dead ~= 'none' then
  return redis.error_reply('ERR dead_letter.lua: the dead-letter key ' .. KEYS[2] ..
    ' holds something other than a stream')
end
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
local deliveries = tostring(pending[1][4])
local record = {'dead_reason', ARGV[4], 'dead_entry', ARGV[2], 'dead_deliveries', deliveries,
  'dead_worker', ARGV[3]}
local found = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #found > 0 and type(found[1][2]) == 'table' then
  local fields = found[1][2]
  -- Keep at most 64 original field-value pairs: a garbage entry must not make this script fail.
  local limit = math.min(#fields, 128)
  for i = 1, limit do
    record[#record + 1] = fields[i]
  end
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', cap, '*', unpack(record))
if ARGV[5] ~= '' then
  redis.call('XADD', KEYS[3], '*', 'rid', ARGV[5], 'status', ARGV[6], 'body', ARGV[7],
    'deliveries', deliveries)
  redis.call('PEXPIRE', KEYS[3], ARGV[8])
  redis.call('SET', KEYS[5], 'done', 'PX', ARGV[8])
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[4], ARGV[2], ARGV[2] .. ':last')
return 1
