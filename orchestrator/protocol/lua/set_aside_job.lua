-- set_aside_job.lua: a claimed job that cannot be read moves to the malformed stream, and
-- each task it names that still has an execution fails.
--
-- KEYS[1]: the worker's claimed list
-- KEYS[2]: the malformed stream
-- KEYS[3]: the events stream
-- KEYS[4..]: the execution key of each task to fail
-- ARGV[1]: the job id as queued
-- ARGV[2]: the task queue's key
-- ARGV[3]: the job id as text
-- ARGV[4]: the reason
-- ARGV[5]: the bounded copy of the job (JSON)
-- ARGV[6]: the events stream's field that holds an event ("event")
-- ARGV[7..]: one TaskFailed report per execution key, in the same order
--
-- Only the worker that still holds the claim moves the job, so a job is moved aside once even
-- when a reaper gave it back meanwhile.
--
-- Returns how many tasks were failed, or -1 when the claim was gone (nothing moved).

if redis.call("LREM", KEYS[1], 1, ARGV[1]) == 0 then
  return -1
end
redis.call("XADD", KEYS[2], "*", "stream", ARGV[2], "id", ARGV[3], "reason", ARGV[4], "fields", ARGV[5])
local failed = 0
for i = 4, #KEYS do
  if redis.call("EXISTS", KEYS[i]) == 1 then
    redis.call("XADD", KEYS[3], "*", ARGV[6], ARGV[i + 3])
    failed = failed + 1
  end
end
return failed
