-- recorded_commands.lua: a piece start_tasks and append_reports include, never run alone:
-- it applies writes a worker recorded instead of sending them (RQ's bookkeeping of a job, queued by
-- RQ's own methods on a pipeline that is never executed; worker.bookkeeping), so that they go in
-- the script call the worker makes anyway instead of a transaction of their own.
--
-- KEYS: none of its own; the recorded commands name RQ's keys (a job's, the worker's, RQ's
-- registries), which Redis lets a script touch undeclared outside a cluster.
-- ARGV[at]: the commands as one JSON array, each command an array of its words (text), the
-- command's name first ("[]": none)
--
-- Returns (run_recorded_commands) the index of the ARGV entry after it.

local function run_recorded_commands(at)
  for _, command in ipairs(cjson.decode(ARGV[at])) do
    redis.call(unpack(command))
  end
  return at + 1
end
