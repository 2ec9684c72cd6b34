-- append_reports.lua: a job's reports onto the event stream and its leases off the leases zset,
-- in one call: a report and its lease never both stay behind, and one command instead of one
-- XADD each spares the client packing and parsing every command in Python.
--
-- KEYS[1]: the orchestrators' event stream
-- KEYS[2]: the leases zset
-- KEYS[3]: (only when the worker counts) the metrics hash (protocol.metrics)
-- ARGV[1]: the entry's field
-- ARGV[2]: n, the number of reports
-- ARGV[3 .. n+2]: the reports
-- with KEYS[3]: ARGV[n+3]: m, then m pairs of a metrics field and its increment
-- next: the writes recorded for the job's end (RQ's bookkeeping of its success, one JSON
--   argument; recorded_commands.lua); "[]" for none
-- then, to the end: the lease records to remove
--
-- The counts and the recorded writes go last, the counts only into a hash (or no key yet): a
-- broken metrics key or RQ key loses them, never a report or a lease (and a broken metrics key
-- never RQ's bookkeeping either).
--
-- A worker whose reply was lost makes the same call again. Its reports go again (a token is
-- taken once) but its counts must not: they are added only when this call removed one of its
-- leases, which the call that was applied already did. A call without leases (a plain RQ
-- worker's) has nothing to tell a repeat by and counts each time.
--
-- Returns n.

--#include recorded_commands

local SLICE = 1000  -- Lua cannot unpack about 8,000 values into one call

local n = tonumber(ARGV[2])
for i = 3, n + 2 do
  redis.call("XADD", KEYS[1], "*", ARGV[1], ARGV[i])
end
local m = KEYS[3] and tonumber(ARGV[n + 3]) or 0
local recorded_at = KEYS[3] and n + 4 + 2 * m or n + 3
local leases_from = recorded_at + 1
local removed = 0
for first = leases_from, #ARGV, SLICE do
  removed = removed + redis.call("ZREM", KEYS[2], unpack(ARGV, first, math.min(first + SLICE - 1, #ARGV)))
end
if m > 0 and (removed > 0 or leases_from > #ARGV) then
  -- pcall, not TYPE first: a metrics key of another type (or a count that is no integer) fails
  -- its own increments and nothing else.
  for i = n + 4, n + 2 + 2 * m, 2 do
    redis.pcall("HINCRBY", KEYS[3], ARGV[i], ARGV[i + 1])
  end
end
run_recorded_commands(recorded_at)
return n
