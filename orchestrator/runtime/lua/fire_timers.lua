-- fire_timers.lua: move every due timer onto the event stream, so exactly one caller fires each.
--
-- KEYS[1]: the timers zset (member: a TimerFired event as JSON, score: its due time)
-- KEYS[2]: the event stream the timers fire into
-- ARGV[1]: now (epoch seconds)
-- ARGV[2]: the most timers to fire in one call
-- ARGV[3]: the stream field that holds an event ("event")
--
-- Returns how many timers fired.

local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, tonumber(ARGV[2]))
for _, event in ipairs(due) do
  redis.call("ZREM", KEYS[1], event)
  redis.call("XADD", KEYS[2], "*", ARGV[3], event)
end
return #due
