-- expand_history.lua: turn a compacted history back into a list of events, which a redrive appends to.
--
-- KEYS[1]: the history key
-- ARGV[1]: the compacted string the caller read there (runtime.histories)
-- ARGV[2]: how many events go in one RPUSH (Lua cannot unpack about 8,000 values into one call)
-- ARGV[3..]: the events, in order
--
-- Returns 1 when the key held exactly ARGV[1] and now holds the events as a list; 0 when it
-- held anything else (another expansion came first), which is left as it is.

if redis.call("TYPE", KEYS[1])["ok"] ~= "string" or redis.call("GET", KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call("DEL", KEYS[1])
local slice = tonumber(ARGV[2])
for first = 3, #ARGV, slice do
  redis.call("RPUSH", KEYS[1], unpack(ARGV, first, math.min(first + slice - 1, #ARGV)))
end
return 1
