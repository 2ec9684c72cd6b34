-- handoff_floor_report.lua: the hand-off floor's report (bench/handoff_floor.py): append the
-- task's outcome to the event stream and drop the job from the worker's claimed list.
-- KEYS[1]: the event stream; KEYS[2]: the worker's claimed list.
-- ARGV[1]: the report; ARGV[2]: the job it ends.
-- Returns 1.
redis.call('XADD', KEYS[1], '*', 'event', ARGV[1])
redis.call('LREM', KEYS[2], 1, ARGV[2])
return 1
