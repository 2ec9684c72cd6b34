-- recorded_commands.lua: a piece take_job, start_tasks and append_reports include, never run alone:
-- it applies writes a worker recorded instead of sending them (RQ's bookkeeping of a job, queued by
-- RQ's own methods on a pipeline that is never executed; worker.bookkeeping), so that they go in
-- the script call the worker makes anyway instead of a transaction of their own.
--
-- KEYS: none of its own; the recorded commands name RQ's keys (a job's, the worker's, RQ's
-- registries), which Redis lets a script touch undeclared outside a cluster.
-- ARGV[at]: k, the number of ARGV entries after it that hold the commands, each as its word count
-- and then its words, the command's name first (k = 0: none)
--
-- Returns (run_recorded_commands) the index of the first ARGV entry after the commands.

local function run_recorded_commands(at)
  local last = at + tonumber(ARGV[at])
  local i = at + 1
  while i <= last do
    local count = tonumber(ARGV[i])
    redis.call(unpack(ARGV, i + 1, i + count))
    i = i + count + 1
  end
  return last + 1
end
