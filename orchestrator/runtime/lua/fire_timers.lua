-- fire_timers.lua: move every due timer onto the event stream, so exactly one caller fires each.
--
-- KEYS[1]: the timers zset (member: a TimerFired event as JSON, score: its due time)
-- KEYS[2]: the event stream the timers fire into
-- ARGV[1]: now (epoch seconds)
-- ARGV[2]: the most timers to fire in one call
-- ARGV[3]: the stream field that holds an event ("event")
--
-- A script is not rolled back, so both keys' types are checked before the first write: an
-- event stream that someone replaced with another type must not swallow the timers taken
-- off the zset before its XADD failed. The call then fires nothing and says why.
--
-- Returns how many timers fired.

for k = 1, 2 do
  local actual = redis.call("TYPE", KEYS[k])["ok"]
  local need = k == 1 and "zset" or "stream"
  if actual ~= "none" and actual ~= need then
    return redis.error_reply("WRONGTYPE fire_timers.lua: " .. KEYS[k] .. " is a " .. actual .. ", not a " .. need)
  end
end

local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, tonumber(ARGV[2]))
for _, event in ipairs(due) do
  redis.call("ZREM", KEYS[1], event)
  redis.call("XADD", KEYS[2], "*", ARGV[3], event)
end
return #due
