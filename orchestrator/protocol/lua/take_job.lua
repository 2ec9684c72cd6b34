-- take_job.lua: a worker reads a job it claimed and, when it is a task job as the orchestrators
-- write them, starts it in the same call (as start_tasks.lua does): one round trip from a job's
-- id to its function instead of two.
--
-- KEYS[1]: the job's hash (rq:job:<id>)
-- KEYS[2]: the worker's claimed list
-- KEYS[3]: the leases zset
-- ARGV[1]: the job id as queued
-- ARGV[2]: how long a lease lasts unrenewed (seconds, as the lease records spell it: "30.0")
-- ARGV[3]: the worker's name
-- ARGV[4]: the request id of the job's first task (a UUID); the n-th task's ends in n instead
-- ARGV[5]: the one function a task job names (protocol.jobs.TASK_ENTRY_POINT)
-- ARGV[6]: the task queue's name, the job's origin
-- ARGV[7]: the event stream the job must report to
-- ARGV[8]: the job timeout (seconds) that RQ's bookkeeping below was recorded for
-- ARGV[9]: RQ's bookkeeping of the job's start, one JSON argument (recorded_commands.lua)
--
-- The job starts only when every check below holds; anything else (another application's job,
-- callbacks, another timeout, data that is not JSON) is left claimed and untouched for the
-- worker to judge, which reads the same hash the strict way. The lease records are built here,
-- key by key in a fixed order, so the same call repeated after a lost reply sets the same ones.
--
-- Returns {type of KEYS[1], fields, started}: fields is the hash as HGETALL gives it ({} when
-- KEYS[1] holds no hash); when started is 1 the reply goes on with claimed (1 when the job was
-- still in the claimed list, 0 when a reaper had given it back) and the lease records set, one
-- per addressable task, in task order.

--#include recorded_commands

-- HGETALL answers for an absent key too ({}: Redis keeps no empty hash), so TYPE is asked only
-- when the key holds something else.
local fields = redis.pcall("HGETALL", KEYS[1])
if fields.err then
  return {redis.call("TYPE", KEYS[1])["ok"], {}, 0}
elseif #fields == 0 then
  return {"none", {}, 0}
end
local hash = {}
for i = 1, #fields, 2 do
  hash[fields[i]] = fields[i + 1]
end
local function refuse()
  return {"hash", fields, 0}
end

local success, failure, stopped, webhooks = hash["success_callback_name"], hash["failure_callback_name"],
  hash["stopped_callback_name"], hash["webhooks"]
if (success and success ~= "") or (failure and failure ~= "") or (stopped and stopped ~= "")
    or (webhooks and webhooks ~= "") then
  return refuse()
end
if hash["origin"] ~= ARGV[6] or hash["timeout"] ~= ARGV[8] or hash["data"] == nil then
  return refuse()
end
local decoded, job = pcall(cjson.decode, hash["data"])
if not decoded or type(job) ~= "table" or #job ~= 4 or job[1] ~= ARGV[5] or job[2] ~= cjson.null then
  return refuse()
end
if type(job[4]) ~= "table" or next(job[4]) ~= nil then
  return refuse()
end
local args = job[3]
if type(args) ~= "table" or type(args[1]) ~= "table" or args[2] ~= ARGV[7] or #args ~= 2 then
  return refuse()
end

local now = redis.call("TIME")
local due = tonumber(now[1]) + tonumber(now[2]) / 1000000 + tonumber(ARGV[2])
local claimed = redis.call("LREM", KEYS[2], 1, ARGV[1])
local reply = {"hash", fields, 1, claimed}
-- What every lease of the job ends with, built once.
local tail = ',"worker":' .. cjson.encode(ARGV[3]) .. ',"lease_seconds":' .. ARGV[2] .. ',"request_id":'
local n = 0
for _, task in ipairs(args[1]) do
  if type(task) == "table" and type(task["execution"]) == "string" and type(task["token"]) == "string" then
    n = n + 1
    local request_id = ARGV[4]
    if n > 1 then
      local suffix = tostring(n)
      request_id = string.sub(ARGV[4], 1, #ARGV[4] - #suffix) .. suffix
    end
    local function_name = type(task["function"]) == "string" and task["function"] or ""
    local lease = '{"execution":' .. cjson.encode(task["execution"])
      .. ',"token":' .. cjson.encode(task["token"])
      .. ',"function":' .. cjson.encode(function_name)
      .. tail .. cjson.encode(request_id) .. '}'
    redis.call("ZADD", KEYS[3], due, lease)
    reply[n + 4] = lease
  end
end
run_recorded_commands(9)
return reply
