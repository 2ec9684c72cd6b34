-- fire_timers.lua: move every due timer, and every expired task lease, onto the event stream,
-- so exactly one caller fires each.
--
-- KEYS[1]: the timers zset (member: a TimerFired event as JSON, score: its due time)
-- KEYS[2]: the event stream the timers fire into
-- KEYS[3]: the leases zset (member: a lease record as JSON, score: when it runs out by Redis's TIME)
-- KEYS[4]: the metrics hash (protocol.metrics): an expired lease counts as a failure of its function
-- ARGV[1]: now (epoch seconds), for the timers
-- ARGV[2]: the most timers (and the most leases) to fire in one call
-- ARGV[3]: the stream field that holds an event ("event")
-- ARGV[4]: the error of an expired lease's TaskFailed event (protocol.leases.LEASE_ERROR)
-- ARGV[5]: its errorMessage, a format of the worker (%s) and the lease's seconds (%.2f)
-- ARGV[6]: "1" to count each expired lease in KEYS[4], "0" when metrics are off
--
-- Leases are judged by Redis's own TIME, read here, as the worker's scripts that set them do.
-- Each expired lease becomes the TaskFailed event its worker's silence stands for, worded as
-- Lambda words an invocation that never answered (protocol.leases). A member that is no lease
-- record goes onto the stream as it is, where the orchestrators set it aside as malformed,
-- so it cannot stop the leases behind it from firing. A lease left in the timers zset by an
-- earlier version is a ready-made TaskFailed event, and fires as a timer.
--
-- A script is not rolled back, so all keys' types are checked before the first write: an
-- event stream that someone replaced with another type must not swallow the timers taken
-- off the zset before its XADD failed. The call then fires nothing and says why.
--
-- The failure count is best effort, as every count is: when KEYS[4] holds another type of
-- value, the leases still fire and nothing is counted.
--
-- Returns how many timers and leases fired.

local needs = { "zset", "stream", "zset" }
for k = 1, 3 do
  local actual = redis.call("TYPE", KEYS[k])["ok"]
  if actual ~= "none" and actual ~= needs[k] then
    return redis.error_reply("WRONGTYPE fire_timers.lua: " .. KEYS[k] .. " is a " .. actual .. ", not a " .. needs[k])
  end
end

local metrics_type = redis.call("TYPE", KEYS[4])["ok"]
local counting = ARGV[6] == "1" and (metrics_type == "none" or metrics_type == "hash")

local limit = tonumber(ARGV[2])
local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, limit)
for _, event in ipairs(due) do
  redis.call("ZREM", KEYS[1], event)
  redis.call("XADD", KEYS[2], "*", ARGV[3], event)
end

local function text(value, default)
  if type(value) == "string" then
    return value
  end
  return default
end

-- The TaskFailed event (JSON) an expired lease record turns into, and the function it failed;
-- the record itself, and no function, when it is none.
local function lease_failure(record)
  local ok, lease = pcall(cjson.decode, record)
  if not ok or type(lease) ~= "table" or type(lease.execution) ~= "string" or type(lease.token) ~= "string" then
    return record, nil
  end
  local message = string.format(ARGV[5], text(lease.worker, "?"), tonumber(lease.lease_seconds) or 0)
  local cause = '{"errorMessage": ' .. cjson.encode(message)
    .. ', "errorType": ' .. cjson.encode(ARGV[4])
    .. ', "requestId": ' .. cjson.encode(text(lease.request_id, ""))
    .. ', "stackTrace": []}'
  return '{"type":"TaskFailed","execution":' .. cjson.encode(lease.execution)
    .. ',"token":' .. cjson.encode(lease.token)
    .. ',"error":' .. cjson.encode(ARGV[4])
    .. ',"cause":' .. cjson.encode(cause) .. '}', text(lease["function"], nil)
end

local now = redis.call("TIME")
local expired = redis.call("ZRANGEBYSCORE", KEYS[3], "-inf", tonumber(now[1]) + tonumber(now[2]) / 1000000, "LIMIT", 0, limit)
for _, record in ipairs(expired) do
  redis.call("ZREM", KEYS[3], record)
  local event, failed_function = lease_failure(record)
  redis.call("XADD", KEYS[2], "*", ARGV[3], event)
  if counting and failed_function and failed_function ~= "" then
    -- The field protocol.metrics.field("task_failures", <function>, LEASE_ERROR) names.
    redis.call("HINCRBY", KEYS[4], cjson.encode({ "task_failures", failed_function, ARGV[4] }), 1)
  end
end
return #due + #expired
