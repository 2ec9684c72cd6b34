-- append_reports.lua: a job's reports onto the event stream and its leases off the leases zset,
-- in one call: a report and its lease never both stay behind, and one command instead of one
-- XADD each spares the client packing and parsing every command in Python.
--
-- KEYS[1]: the orchestrators' event stream
-- KEYS[2]: the leases zset
-- ARGV[1]: the entry's field
-- ARGV[2]: n, the number of reports
-- ARGV[3 .. n+2]: the reports
-- ARGV[n+3 ..]: the lease records to remove
--
-- Returns n.

local n = tonumber(ARGV[2])
for i = 3, n + 2 do
  redis.call("XADD", KEYS[1], "*", ARGV[1], ARGV[i])
end
for i = n + 3, #ARGV do
  redis.call("ZREM", KEYS[2], ARGV[i])
end
return n
