-- start_tasks.lua: a worker starts a claimed job: it leaves the claimed list and its tasks' leases are set.
--
-- KEYS[1]: the worker's claimed list
-- KEYS[2]: the timers zset that holds the leases
-- ARGV[1]: the job id
-- ARGV[2]: the leases' due time (epoch seconds)
-- ARGV[3..]: the leases, one TaskFailed event (JSON) per task
--
-- Returns 1 when the job was still claimed by this worker, 0 when a reaper had taken it back
-- (the worker looked dead): the tasks run anyway, their tokens fence a second run's report.

local claimed = redis.call("LREM", KEYS[1], 1, ARGV[1])
for i = 3, #ARGV do
  redis.call("ZADD", KEYS[2], ARGV[2], ARGV[i])
end
return claimed
