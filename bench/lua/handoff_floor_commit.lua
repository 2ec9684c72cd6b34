-- handoff_floor_commit.lua: the hand-off floor's commit (bench/handoff_floor.py): ack the entry,
-- write the execution, then queue the next job or publish the outcome.
-- KEYS[1]: the stream the entry came from; KEYS[2]: the execution's hash; KEYS[3]: the task
--          queue; KEYS[4]: the outcome channel (a channel, named here beside the keys).
-- ARGV[1]: the entry id; ARGV[2]: the execution's JSON; ARGV[3]: the next job (or the outcome);
-- ARGV[4]: "1" when ARGV[3] is the outcome to publish.
-- Returns 1.
redis.call('XACK', KEYS[1], 'g', ARGV[1])
redis.call('HSET', KEYS[2], 'execution', ARGV[2])
if ARGV[4] == '1' then
  redis.call('PUBLISH', KEYS[4], ARGV[3])
else
  redis.call('RPUSH', KEYS[3], ARGV[3])
end
return 1
