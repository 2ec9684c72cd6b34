-- commit.lua: apply a batch of execution transitions atomically, or nothing at all.
--
-- KEYS: every key the batch touches; operations below name a key by its index in KEYS.
-- ARGV[1]: the consumer group whose pending entries the batch consumes ("orchestrators").
-- ARGV[2]: a JSON array: a flat list of operations, each an opcode followed by its arguments
--          (one JSON argument, because the client packs each argument slowly). An argument is
--          a string, or the number n standing for ARGV[n]:
-- ARGV[3..]: the long arguments (execution blobs, history events, job data, messages). Inside
--          ARGV[2] each quote of their JSON would be escaped, and decoding that took 1.9 of the
--          ~5 ms of a commit of a hundred starts.
--
--   checks (all run first; if any fails nothing is written):
--     version  <k> <expected>            HGET KEYS[k] version equals expected ("0" = no such execution)
--     pending  <k> <id>                  entry id of stream KEYS[k] is still pending in the group
--   writes (run in order once every check passed):
--     exec     <k> <version> <json>      HSET KEYS[k] execution json version version
--     rpush    <k> <n> <v1> .. <vn>      RPUSH KEYS[k] v1 .. vn
--     zadd     <k> <score> <member>      ZADD KEYS[k] score member
--     zrem     <k> <member>              ZREM KEYS[k] member
--     sadd     <k> <member>              SADD KEYS[k] member
--     hset     <k> <n> <f1> <v1> .. <fn> <vn>   HSET KEYS[k] with n field/value pairs
--     xadd     <k> <maxlen> <n> <f1> <v1> ..    XADD KEYS[k] [MAXLEN ~ maxlen] * with n pairs (maxlen 0: uncapped)
--     publish  <channel> <message>       PUBLISH (a channel is not a key, so it travels here)
--     ack      <k> <id>                  XACK KEYS[k] group id, then XDEL (a consumed entry leaves the stream)
--     expire   <k> <seconds>             EXPIRE KEYS[k] seconds (a key only someone who may be gone reads)
--     hincrby  <k> <n> <f1> <d1> .. <fn> <dn>   HINCRBY KEYS[k] fi di for each pair (the metrics hash;
--                                    skipped when KEYS[k] is not a hash)
--
-- A script is not rolled back: a write that fails leaves the writes before it in place. So
-- the first pass also checks everything a write could fail on (every key it writes is absent
-- or of the type the write needs; every count, score and MAXLEN is a number; an XADD has at
-- most MAX_FIELDS pairs), and the second pass sends RPUSH and HSET in slices of at most
-- SLICE values: Lua cannot unpack about 8,000 values into one call, and a long history or a
-- Map of thousands of items has more.
--
-- The ZADDs to one key are gathered into one call, and so are the acks of one stream: a batch
-- of a hundred starts adds four hundred index entries and acknowledges a hundred messages. What
-- was gathered for a key is sent before any other write to that key, so writes keep their order.
--
-- Returns {} when the batch was applied; otherwise a flat list of conflicts, each
-- "version" <key> or "acked" <key> <id> (the caller reloads and recomputes), or
-- "wrongtype" <key> or "invalid" <key> <why> (the batch can never apply as it is).

local SLICE = 1000
local MAX_FIELDS = 1000

local group = ARGV[1]
local ops = cjson.decode(ARGV[2])
for j = 1, #ops do
  local n = ops[j]
  if type(n) == "number" then
    if n < 3 or n ~= math.floor(n) or ARGV[n] == nil then
      error("commit.lua: operation argument " .. j .. " names ARGV[" .. n .. "], which is not a long argument")
    end
    ops[j] = ARGV[n]
  end
end

-- How many arguments follow each fixed-size opcode; rpush, hset and xadd carry their count.
local fixed = {version = 2, pending = 2, exec = 3, zadd = 3, zrem = 2, sadd = 2, publish = 2, ack = 2, expire = 2}

-- A count of values that is a whole number from 1 up, or nil.
local function count_at(i)
  local n = tonumber(ops[i])
  if n == nil or n < 1 or n ~= math.floor(n) then
    return nil
  end
  return n
end

local function span(i)
  local op = ops[i]
  if fixed[op] then
    return fixed[op] + 1
  elseif op == "rpush" then
    return 3 + (count_at(i + 2) or 0)
  elseif op == "hset" or op == "hincrby" then
    return 3 + 2 * (count_at(i + 2) or 0)
  elseif op == "xadd" then
    return 4 + 2 * (count_at(i + 3) or 0)
  end
  error("commit.lua: unknown opcode " .. tostring(op) .. " at operation " .. i)
end

local function key(i)
  return KEYS[tonumber(ops[i])]
end

-- Why a write's own arguments would make Redis refuse it, or nil when they would not.
local function invalid(i)
  local op = ops[i]
  if (op == "rpush" or op == "hset" or op == "hincrby") and count_at(i + 2) == nil then
    return op .. " needs a count of 1 or more, not " .. tostring(ops[i + 2])
  elseif op == "zadd" then
    local score = tonumber(ops[i + 2])
    -- ZADD reads the score with strtod too, but refuses NaN and surrounding blanks.
    if score == nil or score ~= score or not ops[i + 2]:match("^%S+$") then
      return "zadd score " .. tostring(ops[i + 2]) .. " is not a number"
    end
  elseif op == "hincrby" then
    for j = i + 4, i + 2 + 2 * count_at(i + 2), 2 do
      if not ops[j]:match("^%-?%d+$") then return "hincrby increment " .. ops[j] .. " is not a whole number" end
    end
  elseif op == "expire" and count_at(i + 2) == nil then
    return "expire needs a whole number of seconds from 1, not " .. tostring(ops[i + 2])
  elseif op == "xadd" then
    local maxlen, n = tonumber(ops[i + 2]), count_at(i + 3)
    if maxlen == nil or maxlen < 0 or maxlen ~= math.floor(maxlen) then
      return "xadd MAXLEN " .. tostring(ops[i + 2]) .. " is not a whole number"
    elseif n == nil or n > MAX_FIELDS then
      return "xadd needs 1 to " .. MAX_FIELDS .. " fields, not " .. tostring(ops[i + 3])
    end
  end
  return nil
end

-- Every argument is a string: anything else (a JSON null, a number) is a caller's bug, and
-- redis.call would refuse it half way through the writes.
for j = 1, #ops do
  if type(ops[j]) ~= "string" then
    error("commit.lua: operation argument " .. j .. " is a " .. type(ops[j]) .. ", not a string")
  end
end

-- The type each operation needs its key to have (or to be absent).
local needs = {version = "hash", pending = "stream", exec = "hash", hset = "hash", hincrby = "hash", rpush = "list",
               zadd = "zset", zrem = "zset", sadd = "set", xadd = "stream", ack = "stream"}
local types = {}  -- key index -> its type now, read once
local grouped = {}  -- key indexes whose consumer group a pending check has already proved

-- Append to conflicts whatever keeps operation i from applying.
local conflicts = {}
local function check(i)
  local op, k = ops[i], ops[i + 1]
  local need = needs[op]
  if need then
    if KEYS[tonumber(k)] == nil then
      error("commit.lua: operation " .. i .. " (" .. op .. ") names no key: " .. k)
    end
    if types[k] == nil then
      types[k] = redis.call("TYPE", key(i + 1))["ok"]
      -- A metrics hash of the wrong type loses its counts, never the batch (the write skips it).
      if types[k] ~= "none" and types[k] ~= need and op ~= "hincrby" then
        table.insert(conflicts, "wrongtype")
        table.insert(conflicts, key(i + 1))
      end
    end
    if types[k] ~= "none" and types[k] ~= need then
      return  -- reading it would fail too; the batch is refused already
    end
  end
  local why = invalid(i)
  if why then
    table.insert(conflicts, "invalid")
    table.insert(conflicts, KEYS[tonumber(k)] or k)
    table.insert(conflicts, why)
  elseif op == "version" then
    local current = redis.call("HGET", key(i + 1), "version") or "0"
    if current ~= ops[i + 2] then
      table.insert(conflicts, "version")
      table.insert(conflicts, key(i + 1))
    end
  elseif op == "pending" then
    local entry = redis.call("XPENDING", key(i + 1), group, ops[i + 2], ops[i + 2], 1)
    grouped[k] = true
    if #entry == 0 then
      table.insert(conflicts, "acked")
      table.insert(conflicts, key(i + 1))
      table.insert(conflicts, ops[i + 2])
    end
  elseif op == "ack" and not grouped[k] and types[k] == "stream" then
    -- XACK fails on a stream without the group: find out now (NOGROUP), not half way through.
    redis.call("XPENDING", key(i + 1), group)
    grouped[k] = true
  end
end

local i = 1
while i <= #ops do
  check(i)
  i = i + span(i)
end
if #conflicts > 0 then
  return conflicts
end

-- command KEYS[k] with the count values (of width arguments each) from ops[from], SLICE at a time.
local function sliced(command, k, from, count, width)
  local last = from + count * width - 1
  local step = SLICE * width
  for first = from, last, step do
    redis.call(command, k, unpack(ops, first, math.min(first + step - 1, last)))
  end
end

local gathered = {}  -- key index -> {op = "zadd" or "ack", the score/member pairs or the acked ids}
local gathered_order = {}  -- those key indexes, first gathered first

-- Send what was gathered for key index k: one ZADD, or one XACK and one XDEL, SLICE pairs at a time.
local function flush(k)
  local batch = gathered[k]
  if batch == nil then return end
  gathered[k] = nil
  local step = SLICE * 2
  for first = 1, #batch, step do
    local last = math.min(first + step - 1, #batch)
    if batch.op == "ack" then
      redis.call("XACK", KEYS[tonumber(k)], group, unpack(batch, first, last))
      redis.call("XDEL", KEYS[tonumber(k)], unpack(batch, first, last))
    else
      redis.call("ZADD", KEYS[tonumber(k)], unpack(batch, first, last))
    end
  end
end

local function gather(op, k, first, second)
  local batch = gathered[k]
  if batch == nil then
    batch = {op = op}
    gathered[k] = batch
    table.insert(gathered_order, k)
  end
  batch[#batch + 1] = first
  if second ~= nil then batch[#batch + 1] = second end
end

i = 1
while i <= #ops do
  local op = ops[i]
  local k = ops[i + 1]
  if op ~= "publish" and gathered[k] ~= nil and gathered[k].op ~= op then
    flush(k)
  end
  if op == "exec" then
    redis.call("HSET", key(i + 1), "execution", ops[i + 3], "version", ops[i + 2])
  elseif op == "rpush" then
    sliced("RPUSH", key(i + 1), i + 3, tonumber(ops[i + 2]), 1)
  elseif op == "zadd" then
    gather("zadd", k, ops[i + 2], ops[i + 3])
  elseif op == "zrem" then
    redis.call("ZREM", key(i + 1), ops[i + 2])
  elseif op == "sadd" then
    redis.call("SADD", key(i + 1), ops[i + 2])
  elseif op == "hset" then
    sliced("HSET", key(i + 1), i + 3, tonumber(ops[i + 2]), 2)
  elseif op == "hincrby" and (types[ops[i + 1]] == "none" or types[ops[i + 1]] == "hash") then
    for j = i + 3, i + 1 + 2 * tonumber(ops[i + 2]), 2 do redis.call("HINCRBY", key(i + 1), ops[j], ops[j + 1]) end
  elseif op == "xadd" then
    local last = i + 3 + 2 * tonumber(ops[i + 3])
    if tonumber(ops[i + 2]) == 0 then
      redis.call("XADD", key(i + 1), "*", unpack(ops, i + 4, last))
    else
      redis.call("XADD", key(i + 1), "MAXLEN", "~", ops[i + 2], "*", unpack(ops, i + 4, last))
    end
  elseif op == "publish" then
    redis.call("PUBLISH", ops[i + 1], ops[i + 2])
  elseif op == "ack" then
    gather("ack", k, ops[i + 2])
  elseif op == "expire" then
    redis.call("EXPIRE", key(i + 1), ops[i + 2])
  end
  i = i + span(i)
end
for _, k in ipairs(gathered_order) do flush(k) end
return {}
