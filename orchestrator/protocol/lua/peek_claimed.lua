-- peek_claimed.lua: the job a worker's dequeue has just moved into its claimed list, and that
-- job's hash, read without changing anything. Sent in the same round trip as the blocking
-- move (pipelined behind it), Redis runs it the moment the move is served: the worker wakes
-- with the job's id and hash together instead of asking for the hash after waking.
--
-- KEYS[1]: the worker's claimed list (the move appends to its tail)
-- ARGV[1]: the prefix of a job's key ("rq:job:", protocol.keys.RQ_JOB_PREFIX)
--
-- Returns {} when the list is empty (the move timed out); otherwise {id, kind, fields}: the id
-- at the list's tail, the Redis type of ARGV[1]..id ("none" when there is no such key) and its
-- hash as HGETALL gives it ({} unless kind is "hash"). The caller compares the id with the
-- one the move returned: only then is it the job just moved.
--
-- The job's key is named here, not in KEYS, as the recorded bookkeeping's keys are
-- (recorded_commands.lua): the id is known only once the move was served.

local id = redis.call("LINDEX", KEYS[1], -1)
if not id then
  return {}
end
local key = ARGV[1] .. id
local fields = redis.pcall("HGETALL", key)
if fields.err then
  return {id, redis.call("TYPE", key)["ok"], {}}
elseif #fields == 0 then
  return {id, "none", {}}
end
return {id, "hash", fields}
