-- sweep_closed.lua: remove a batch of executions that finished before a cutoff, all their keys at once.
--
-- KEYS[1]: {p}:closed            zset: finished execution name scored by its stop time
-- KEYS[2]: {p}:executions        zset: the index of every execution
-- KEYS[3]: {p}:status:RUNNING    zset: running executions
-- KEYS[4..]: {p}:status:<STATUS> zsets of the finished statuses (SUCCEEDED, FAILED, TIMED_OUT, ABORTED)
-- ARGV[1]: the cutoff (epoch seconds): executions that stopped before it go
-- ARGV[2]: the most executions to remove in one call
-- ARGV[3]: the prefix {p}; an execution's own keys, {p}:exec:{<name>} and {p}:history:{<name>},
--          are only known once its name is read here, so they cannot travel in KEYS
--
-- An execution still in RUNNING (a redrive's commit takes it out of closed, so this only
-- guards against an index that disagrees) is left whole and only leaves closed, so it is
-- recorded again when it finishes and never holds up the batches behind it.
--
-- A script is not rolled back, so every index's type is checked before the first write: an
-- index someone replaced with another type would otherwise fail a ZREM after the UNLINK of an
-- execution's keys, leaving index entries that name nothing. The call then removes nothing
-- and says why. (UNLINK takes a key of any type.)
--
-- Returns how many executions were removed.

for k = 1, #KEYS do
  local actual = redis.call("TYPE", KEYS[k])["ok"]
  if actual ~= "none" and actual ~= "zset" then
    return redis.error_reply("WRONGTYPE sweep_closed.lua: " .. KEYS[k] .. " is a " .. actual .. ", not a zset")
  end
end

local names = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", "(" .. ARGV[1], "LIMIT", 0, tonumber(ARGV[2]))
local removed = 0
for _, name in ipairs(names) do
  if not redis.call("ZSCORE", KEYS[3], name) then
    -- UNLINK frees a long history off the main thread; to every reader it is DEL.
    redis.call("UNLINK", ARGV[3] .. ":exec:{" .. name .. "}", ARGV[3] .. ":history:{" .. name .. "}")
    redis.call("ZREM", KEYS[2], name)
    for k = 4, #KEYS do
      redis.call("ZREM", KEYS[k], name)
    end
    removed = removed + 1
  end
  redis.call("ZREM", KEYS[1], name)
end
return removed
