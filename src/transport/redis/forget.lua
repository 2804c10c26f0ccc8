-- Removes the consumers of dead workers from the group: those with no pending entry left
-- (a worker that took over their entries has them now), no live announcement (their
-- heartbeat expired, or they never had one) and idle for at least a given time. Atomic, so
-- that a consumer cannot take an entry between the check and its removal (XGROUP
-- DELCONSUMER drops a consumer's pending entries).
--
-- KEYS[1] task stream
-- ARGV[1] group, ARGV[2] the prefix of the workers' heartbeat keys, ARGV[3] minimum idle
-- time in ms
--
-- Returns the names of the consumers removed.
local removed = {}
-- Without the stream or its group there is nothing to remove.
local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if type(consumers) ~= 'table' or consumers.err then
  return removed
end
local min_idle = tonumber(ARGV[3])
for _, consumer in ipairs(consumers) do
  local info = {}
  for i = 1, #consumer - 1, 2 do
    info[consumer[i]] = consumer[i + 1]
  end
  local name = info['name']
  if name and info['pending'] == 0 and tonumber(info['idle'] or 0) >= min_idle
    and redis.call('EXISTS', ARGV[2] .. name) == 0 then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    removed[#removed + 1] = name
  end
end
return removed
