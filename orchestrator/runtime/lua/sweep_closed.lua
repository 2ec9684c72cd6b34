-- sweep_closed.lua: remove a batch of executions of some machines that finished before a cutoff, all their keys at once.
--
-- KEYS[1]: {p}:closed            zset: finished execution name scored by its stop time
-- KEYS[2]: {p}:executions        zset: the index of every execution
-- KEYS[3]: {p}:status:RUNNING    zset: running executions
-- KEYS[4..]: {p}:status:<STATUS> zsets of the finished statuses (SUCCEEDED, FAILED, TIMED_OUT, ABORTED)
-- ARGV[1]: the cutoff (epoch seconds): executions that stopped before it are looked at
-- ARGV[2]: the most entries of closed to look at (so also to remove) in one call
-- ARGV[3]: the prefix {p}; an execution's own keys, {p}:exec:{<name>} and {p}:history:{<name>},
--          are only known once its name is read here, so they cannot travel in KEYS
-- ARGV[4]: the cursor's score: where the last call for these machines stopped ("-inf": the start)
-- ARGV[5]: the cursor's member: the last entry that call looked at ("": none)
-- ARGV[6]: "except" or "only": remove the executions of every machine but those named in
--          ARGV[7..], or of only those
-- ARGV[7..]: state machine names
--
-- Machines with different retentions share closed, so entries of a machine kept longer lie
-- among those due. Each retention has its own cursor: a call goes on after the last entry
-- looked at (right after it while it is still there, else from its score, which only looks
-- again at entries that were kept), so no entry is looked at twice for one retention, and a
-- machine with a short retention is swept on time behind any number of executions kept longer.
-- A machine is read from the execution's blob only when some machine is named; an entry
-- whose blob is gone counts as no machine's, so "except" removes it and "only" leaves it.
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
-- Returns {removed, looked at, the new cursor's score, the new cursor's member}.

for k = 1, #KEYS do
  local actual = redis.call("TYPE", KEYS[k])["ok"]
  if actual ~= "none" and actual ~= "zset" then
    return redis.error_reply("WRONGTYPE sweep_closed.lua: " .. KEYS[k] .. " is a " .. actual .. ", not a zset")
  end
end

local cutoff, limit, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local cursor_score, cursor_member, only = ARGV[4], ARGV[5], ARGV[6] == "only"
local named = {}
for i = 7, #ARGV do
  named[ARGV[i]] = true
end
local any_named = #ARGV >= 7

local entries
local rank = cursor_member ~= "" and redis.call("ZRANK", KEYS[1], cursor_member)
if rank then
  entries = redis.call("ZRANGE", KEYS[1], rank + 1, rank + limit, "WITHSCORES")
else
  entries = redis.call("ZRANGEBYSCORE", KEYS[1], cursor_score, "(" .. ARGV[1], "WITHSCORES", "LIMIT", 0, limit)
end

local function machine_of(name)
  local blob = redis.call("HGET", prefix .. ":exec:{" .. name .. "}", "execution")
  if not blob then
    return nil
  end
  local ok, execution = pcall(cjson.decode, blob)
  if ok and type(execution) == "table" then
    return execution["stateMachine"]
  end
  return nil
end

local function removes(name)
  if not any_named then
    return not only
  end
  local machine = machine_of(name)
  local listed = machine ~= nil and named[machine] == true
  return listed == only
end

-- Its machine's own indexes too (runtime.execution_index), read from the blob before it goes,
-- and the version it was started on (api.stepfunctions.versions).
-- pcall: a key someone replaced with another type must not stop the sweep.
local function unindex_by_machine(name)
  redis.pcall("HDEL", prefix .. ":sfn-execution-origins", name)
  local machine = machine_of(name)
  if machine then
    redis.pcall("ZREM", prefix .. ":machine-executions:" .. machine, name)
    for _, status in ipairs({"RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}) do
      redis.pcall("ZREM", prefix .. ":machine-status:" .. machine .. ":" .. status, name)
    end
  end
end

local removed, looked_at = 0, 0
for i = 1, #entries, 2 do
  local name, score = entries[i], entries[i + 1]
  if tonumber(score) >= cutoff then
    break
  end
  looked_at = looked_at + 1
  cursor_score, cursor_member = score, name
  if redis.call("ZSCORE", KEYS[3], name) then
    redis.call("ZREM", KEYS[1], name)
  elseif removes(name) then
    unindex_by_machine(name)
    -- UNLINK frees a long history off the main thread; to every reader it is DEL.
    redis.call("UNLINK", prefix .. ":exec:{" .. name .. "}", prefix .. ":history:{" .. name .. "}")
    redis.call("ZREM", KEYS[2], name)
    for k = 4, #KEYS do
      redis.call("ZREM", KEYS[k], name)
    end
    redis.call("ZREM", KEYS[1], name)
    removed = removed + 1
  end
end
return {removed, looked_at, cursor_score, cursor_member}
