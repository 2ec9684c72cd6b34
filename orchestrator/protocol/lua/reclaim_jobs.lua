-- reclaim_jobs.lua: a dead worker's claimed jobs go back to the head of the task queue.
--
-- KEYS[1]: the workers set
-- KEYS[2]: the dead worker's liveness key
-- KEYS[3]: its claimed list
-- KEYS[4]: the RQ task queue
-- ARGV[1]: the worker's name
--
-- Returns how many jobs went back, or -1 when the worker turned out to be alive.

if redis.call("EXISTS", KEYS[2]) == 1 then
  return -1
end
local moved = 0
while redis.call("LMOVE", KEYS[3], KEYS[4], "RIGHT", "LEFT") do
  moved = moved + 1
end
redis.call("SREM", KEYS[1], ARGV[1])
return moved
