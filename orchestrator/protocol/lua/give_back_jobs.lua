-- give_back_jobs.lua: a worker's own claimed jobs, back to the head of the queue (it is
-- starting its loop afresh).
--
-- KEYS[1]: the worker's claimed list
-- KEYS[2]: the RQ task queue
-- ARGV: none
--
-- Returns how many jobs went back.

local moved = 0
while redis.call("LMOVE", KEYS[1], KEYS[2], "RIGHT", "LEFT") do
  moved = moved + 1
end
return moved
