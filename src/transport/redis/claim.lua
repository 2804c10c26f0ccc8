-- Claims entries that have been idle (unacknowledged, untouched) for at least a given time
-- and returns them with their delivery counts, which XAUTOCLAIM alone does not report.
--
-- KEYS[1] task stream, KEYS[2] the queue's starts hash
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] minimum idle time in ms, ARGV[4] cursor,
-- ARGV[5] count
--
-- Returns {next cursor, {{id, deliveries, fields or false}, ...}}.
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4],
  'COUNT', ARGV[5])
local out = {}
for _, entry in ipairs(claimed[2]) do
  local id = entry[1]
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  local deliveries = 0
  if #pending > 0 then
    deliveries = pending[1][4]
  end
  out[#out + 1] = {id, deliveries, entry[2]}
end
-- Pending entries whose stream entry was deleted (a client that closed) are dropped from the
-- pending list by XAUTOCLAIM (Redis 7 lists them third): forget their starts with them.
for _, id in ipairs(claimed[3] or {}) do
  redis.call('HDEL', KEYS[2], id, id .. ':last')
end
return {claimed[1], out}
