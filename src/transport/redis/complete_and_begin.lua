-- complete.lua and begin.lua in one call: a worker writes its runners' outcomes together with
-- the starts of their next entries, atomically, and starts those entries once this returns.
-- The two scripts are included above this part as the functions `complete(KEYS, ARGV)` and
-- `begin(KEYS, ARGV)` (see redis_store.rs), unchanged: what they do, check and answer is in
-- their own files. One script call instead of two halves the scripts' fixed cost (building
-- arguments, converting replies) on the worker's busiest path.
--
-- KEYS[1] task stream, KEYS[2] the queue's starts hash, then per outcome three keys as in
-- complete.lua
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] how many outcomes, then per outcome nine
-- arguments as in complete.lua, then the ids of the entries to begin
--
-- Returns {complete.lua's answers, begin.lua's answers}; an error of either (an argument
-- check) as the error of the call. The arguments of both are checked before the first write.
local outcomes = tonumber(ARGV[3])
if outcomes == nil or outcomes < 0 or outcomes ~= math.floor(outcomes)
  or #ARGV < 3 + 9 * outcomes or #KEYS ~= 2 + 3 * outcomes then
  return redis.error_reply('ERR complete_and_begin.lua: outcome count ' .. tostring(ARGV[3]) ..
    ' does not match ' .. #KEYS .. ' keys and ' .. #ARGV .. ' arguments')
end
local complete_args = {ARGV[1], ARGV[2]}
for i = 4, 3 + 9 * outcomes do
  complete_args[#complete_args + 1] = ARGV[i]
end
local begin_args = {ARGV[1], ARGV[2]}
for i = 4 + 9 * outcomes, #ARGV do
  begin_args[#begin_args + 1] = ARGV[i]
end
-- Where the entries of both parts stand, in one look at the pending list for both (see
-- pending_of.lua): the starts then see the outcomes' entries as complete.lua left them.
local all_ids = {}
for i = 0, outcomes - 1 do
  all_ids[#all_ids + 1] = ARGV[4 + 9 * i]
end
for i = 4 + 9 * outcomes, #ARGV do
  all_ids[#all_ids + 1] = ARGV[i]
end
local pending, problem = pending_of(KEYS[1], ARGV[1], ARGV[2], all_ids)
if not pending then
  return problem
end
known_pending = pending
local completed = {}
if outcomes > 0 then
  completed = complete(KEYS, complete_args)
  if completed.err then
    return completed
  end
  -- An accepted outcome's entry is no longer pending (acknowledged, or it was not pending).
  for i = 0, outcomes - 1 do
    if completed[i + 1] == 1 then
      known_pending[ARGV[4 + 9 * i]] = false
    end
  end
end
local begun = {}
if #begin_args > 2 then
  begun = begin({KEYS[1], KEYS[2]}, begin_args)
  if begun.err then
    return begun
  end
end
return {completed, begun}
