-- renew_leases.lua: a worker pushes back the end of the leases it still holds.
--
-- KEYS[1]: the leases zset
-- ARGV[1]: how long a lease lasts unrenewed (seconds)
-- ARGV[2..]: the lease records to renew
--
-- Each runs out ARGV[1] seconds after Redis's TIME. A lease that is gone (its report removed
-- it, or it already fired) is not set again (ZADD XX).
--
-- Returns how many leases were renewed.

local now = redis.call("TIME")
local due = tonumber(now[1]) + tonumber(now[2]) / 1000000 + tonumber(ARGV[1])
local renewed = 0
for i = 2, #ARGV do
  renewed = renewed + redis.call("ZADD", KEYS[1], "XX", "CH", due, ARGV[i])
end
return renewed
