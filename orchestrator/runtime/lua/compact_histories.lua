-- compact_histories.lua: replace finished executions' history lists by their compacted strings.
--
-- KEYS[1]: {p}:closed, each finished execution scored by its stop time
-- KEYS[2 .. n+1]: the executions' history keys
-- ARGV[1 .. n]: the executions' names
-- ARGV[n+1 .. 2n]: how many events each list held when the caller read it
-- ARGV[2n+1 .. 3n]: each history's compacted string (runtime.histories.pack)
--
-- A list is replaced only while its execution is still in closed (a redrive's commit takes it
-- out before it appends) and the list still holds as many events as were read, so an event
-- appended meanwhile is never lost: that history waits for a later pass. SET replaces the
-- list whole, so no reader ever sees half of one form.
--
-- Returns how many histories were replaced.

local n = #KEYS - 1
local replaced = 0
for i = 1, n do
  local key = KEYS[i + 1]
  if redis.call("ZSCORE", KEYS[1], ARGV[i])
      and redis.call("TYPE", key)["ok"] == "list"
      and redis.call("LLEN", key) == tonumber(ARGV[n + i]) then
    redis.call("SET", key, ARGV[2 * n + i])
    replaced = replaced + 1
  end
end
return replaced
