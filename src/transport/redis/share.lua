-- The record of a shared key (a pure task, or one given an explicit key) that several
-- clients of a queue may submit: which delivery computes it, which clients hold it (a lease
-- each, renewed by live clients), and which deliveries of other clients wait for that run.
--
-- KEYS[1] the key's record, a hash: `run` the delivery computing it, `h:<client>` a holder's
-- lease expiry (ms of the server's clock), `w:<rid>` the reply stream of a waiting delivery;
-- KEYS[2] the key's result (written by the worker that runs it)
-- ARGV[1] the operation, then its arguments:
--   join <client> <rid> <reply> <lease ms> <entry_of prefix>: holds the key for `client`
--     (delivery `rid`) and answers what to do: {'done', result} when the result exists,
--     {'wait'} while another client's run is alive (queued, running, or its live submitter
--     yet to enqueue or to forward it; `rid` is then told its outcome on `reply`), else
--     {'run'} (`rid` is now the run: enqueue it). Called again while waiting: a run whose
--     submitter died and whose entry is gone (or reported, without a result) is taken over.
--   done <rid> <status> <body> <deliveries> <reply ttl ms>: the run `rid` completed; its
--     outcome is forwarded to every waiting delivery, and the key has no run any more.
--   leave <client> <rid>: gives up `client`'s hold (and the wait of `rid`). Answers {'kept'}
--     while another live client holds it, else deletes the result (and the record, unless a
--     run is in flight: a client joining before it expires waits for that run) and answers
--     {'last', run} (run is '' when none is in flight).
--   refresh <client> <lease ms>: renews `client`'s hold ({'kept'}), or answers {'gone'}
--     when the record expired meanwhile (the hold is not made again).
-- Record and result expire when the last live lease does: a holder whose process died
-- keeps nothing for longer than its lease. Arguments are checked before the first write.
local record, result = KEYS[1], KEYS[2]
local op = ARGV[1]

local function whole_ms(text, what)
  local ms = tonumber(text)
  if ms == nil or ms < 1 or ms > 31536000000 or ms ~= math.floor(ms) then
    return nil, redis.error_reply('ERR share.lua ' .. op .. ': ' .. what .. ' is ' ..
      tostring(text) .. ', not a whole number of ms from 1 to 31536000000')
  end
  return ms
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

-- Drops expired holds and sets the record's and the result's expiry to the latest live
-- one; returns it (0 when no live hold is left).
local function expire_with_holds()
  local fields = redis.call('HGETALL', record)
  local latest = 0
  for i = 1, #fields, 2 do
    local name = fields[i]
    if string.sub(name, 1, 2) == 'h:' then
      local expiry = tonumber(fields[i + 1]) or 0
      if expiry <= now then
        redis.call('HDEL', record, name)
      elseif expiry > latest then
        latest = expiry
      end
    end
  end
  if latest > 0 then
    redis.call('PEXPIREAT', record, latest)
    redis.call('PEXPIREAT', result, latest)
  end
  return latest
end

if op == 'join' then
  local client, rid, reply, entry_prefix = ARGV[2], ARGV[3], ARGV[4], ARGV[6]
  local lease, problem = whole_ms(ARGV[5], 'the lease')
  if not lease then
    return problem
  end
  redis.call('HSET', record, 'h:' .. client, now + lease)
  expire_with_holds()
  if redis.call('EXISTS', result) == 1 then
    redis.call('HDEL', record, 'w:' .. rid)
    return {'done', redis.call('GET', result)}
  end
  local run = redis.call('HGET', record, 'run')
  if run and run ~= rid then
    local owner = string.match(run, '^([^:]*):') or ''
    -- A run of this client's own is an earlier attempt it found lost: run again.
    if owner ~= client then
      local entry = redis.call('GET', entry_prefix .. run)
      local alive = entry and entry ~= 'done'
      if not alive then
        local until_ms = tonumber(redis.call('HGET', record, 'h:' .. owner) or '0') or 0
        alive = until_ms > now
      end
      if alive then
        redis.call('HSET', record, 'w:' .. rid, reply)
        return {'wait'}
      end
    end
  end
  redis.call('HSET', record, 'run', rid)
  redis.call('HDEL', record, 'w:' .. rid)
  return {'run'}
elseif op == 'done' then
  local rid, status, body, deliveries = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
  local ttl, problem = whole_ms(ARGV[6], 'the reply ttl')
  if not ttl then
    return problem
  end
  local fields = redis.call('HGETALL', record)
  local waiters = {}
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 2) == 'w:' then
      local kind = redis.call('TYPE', fields[i + 1])['ok']
      if kind ~= 'stream' and kind ~= 'none' then
        return redis.error_reply('ERR share.lua done: waiter ' .. fields[i] ..
          ' has reply key ' .. fields[i + 1] .. ', which holds something other than a stream')
      end
      table.insert(waiters, {fields[i], fields[i + 1]})
    end
  end
  for _, waiter in ipairs(waiters) do
    redis.call('XADD', waiter[2], '*', 'rid', string.sub(waiter[1], 3), 'status', status,
      'body', body, 'deliveries', deliveries)
    if redis.call('PTTL', waiter[2]) < 0 then
      redis.call('PEXPIRE', waiter[2], ttl)
    end
    redis.call('HDEL', record, waiter[1])
  end
  if redis.call('HGET', record, 'run') == rid then
    redis.call('HDEL', record, 'run')
  end
  return {'forwarded', #waiters}
elseif op == 'leave' then
  local client, rid = ARGV[2], ARGV[3]
  redis.call('HDEL', record, 'h:' .. client, 'w:' .. rid)
  if expire_with_holds() > 0 then
    return {'kept'}
  end
  local run = redis.call('HGET', record, 'run') or ''
  if run == '' then
    redis.call('DEL', record, result)
  else
    -- A run a worker may have begun stays findable (until the record's expiry, a lease at
    -- most): a client that joins meanwhile waits for it rather than running it again.
    redis.call('DEL', result)
  end
  return {'last', run}
elseif op == 'refresh' then
  local client = ARGV[2]
  local lease, problem = whole_ms(ARGV[3], 'the lease')
  if not lease then
    return problem
  end
  if redis.call('EXISTS', record) == 0 then
    return {'gone'}
  end
  redis.call('HSET', record, 'h:' .. client, now + lease)
  expire_with_holds()
  return {'kept'}
end
return redis.error_reply('ERR share.lua: unknown operation ' .. tostring(op))
