-- start_tasks.lua: a worker starts a claimed job: it leaves the claimed list and its tasks' leases are set.
--
-- KEYS[1]: the worker's claimed list
-- KEYS[2]: the leases zset
-- KEYS[3]: the RQ task queue, where a reaper puts back the claimed jobs of a worker that looked dead
-- ARGV[1]: the job id
-- ARGV[2]: how long a lease lasts unrenewed (seconds)
-- ARGV[3]: writes recorded for the job's start (RQ's bookkeeping, one JSON argument;
--   recorded_commands.lua), applied after the leases; "[]" for none
-- ARGV[4 ..]: the leases, one lease record (JSON, protocol.leases) per task
--
-- A lease runs out ARGV[2] seconds after Redis's TIME, the clock the orchestrators fire leases
-- by (a script that reads TIME and then writes is replicated by its effects, Redis 7's default).
--
-- Returns 1 when the job was still claimed by this worker. A reaper may have given it back while
-- the worker looked dead (frozen, or Redis took no writes from anyone for a lease); the tasks
-- run here anyway, so the job leaves the queue again: 0. Left there, it would run twice, or be
-- dequeued after its end deleted its hash and moved aside as missing. -1 when it is in neither:
-- another worker took it meanwhile (the tokens fence the second run's reports), or this is a
-- START sent again after its reply was lost.

--#include recorded_commands

local now = redis.call("TIME")
local due = tonumber(now[1]) + tonumber(now[2]) / 1000000 + tonumber(ARGV[2])
local claimed = redis.call("LREM", KEYS[1], 1, ARGV[1])
if claimed == 0 then
  claimed = redis.call("LREM", KEYS[3], 1, ARGV[1]) - 1
end
for i = 4, #ARGV do
  redis.call("ZADD", KEYS[2], due, ARGV[i])
end
run_recorded_commands(3)
return claimed
