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

-- Every step below is paid per operation, and Lua's own steps weigh next to a redis.call (~0.35
-- us): tonumber ~0.15 us, a pattern match ~0.17 us, a number turned to text ~0.3 us. So the first
-- pass reads each operation once and keeps what the second needs (where it starts, its key's
-- name, its count), and a key index or a score is converted once per commit, not once per use.

local group = ARGV[1]
local ops = cjson.decode(ARGV[2])
local nops = #ops

-- Every argument is a string once the long ones are in place: anything else (a JSON null, a
-- bad index) is a caller's bug, and redis.call would refuse it half way through the writes.
for j = 1, nops do
  local word = ops[j]
  local kind = type(word)
  if kind ~= "string" then
    if kind ~= "number" then
      error("commit.lua: operation argument " .. j .. " is a " .. kind .. ", not a string")
    elseif word < 3 or word % 1 ~= 0 or ARGV[word] == nil then
      error("commit.lua: operation argument " .. j .. " names ARGV[" .. word .. "], which is not a long argument")
    end
    ops[j] = ARGV[word]
  end
end

-- How many arguments follow each fixed-size opcode; rpush, hset, hincrby and xadd carry a count.
local FIXED = {version = 2, pending = 2, exec = 3, zadd = 3, zrem = 2, sadd = 2, publish = 2, ack = 2, expire = 2}
-- The type each operation needs its key to have (or to be absent); expire takes a key of any type.
local NEEDS = {version = "hash", pending = "stream", exec = "hash", hset = "hash", hincrby = "hash", rpush = "list",
               zadd = "zset", zrem = "zset", sadd = "set", xadd = "stream", ack = "stream"}

-- A count that is a whole number from 1 up, or nil.
local function count(word)
  local n = tonumber(word)
  if n == nil or n < 1 or n % 1 ~= 0 then
    return nil
  end
  return n
end

local key_names = {}  -- key index word -> KEYS entry
local types = {}  -- key index word -> its type now, read once
local proven = {}  -- key index word -> the type a check's read proved it to have, or to be absent
local refused = {}  -- key index words already named in a wrongtype conflict
local grouped = {}  -- key index words whose consumer group has already been proved
local good_scores = {}  -- scores already found valid (the indexes of one start share one)
local conflicts, nconflicts = {}, 0
local function conflict(a, b, c)
  conflicts[nconflicts + 1], conflicts[nconflicts + 2] = a, b
  nconflicts = nconflicts + 2
  if c ~= nil then
    nconflicts = nconflicts + 1
    conflicts[nconflicts] = c
  end
end

-- The writes, in order, as the first pass found them: where each starts, its key, its count.
local write_at, write_key, write_count, nwrites = {}, {}, {}, 0

-- First pass: read every operation, and check everything a write could fail on before any write.
local i = 1
while i <= nops do
  local op, word = ops[i], ops[i + 1]
  local fixed, n = FIXED[op], nil
  local span, why
  if fixed then
    span = fixed + 1
  elseif op == "rpush" or op == "hset" or op == "hincrby" then
    n = count(ops[i + 2])
    span = 3 + (op == "rpush" and 1 or 2) * (n or 0)
    if n == nil then why = op .. " needs a count of 1 or more, not " .. tostring(ops[i + 2]) end
  elseif op == "xadd" then
    n = count(ops[i + 3])
    span = 4 + 2 * (n or 0)
  else
    error("commit.lua: unknown opcode " .. tostring(op) .. " at operation " .. i)
  end
  local need, key, kind = NEEDS[op], nil, nil
  if need or op == "expire" then
    key = key_names[word]
    if key == nil then
      key = KEYS[tonumber(word)]
      if key == nil then
        error("commit.lua: operation " .. i .. " (" .. op .. ") names no key: " .. word)
      end
      key_names[word] = key
    end
  end
  local read  -- the reply of a version or pending check's read, when it was the key's first
  if need then
    kind = types[word]
    if kind == nil and proven[word] == need then
      kind = need
    elseif kind == nil and (op == "version" or op == "pending") then
      -- The check's own read proves the key of the type needed or absent, or fails WRONGTYPE:
      -- that spares a TYPE per execution (its version, then its exec) and per consumed stream.
      if op == "version" then
        read = redis.pcall("HGET", key, "version")
      else
        read = redis.pcall("XPENDING", key, group, ops[i + 2], ops[i + 2], 1)
      end
      if type(read) == "table" and read.err then
        if read.err:sub(1, 9) ~= "WRONGTYPE" then error(read) end  -- NOGROUP, as a plain call fails
        kind = "another type"
        types[word] = kind
      else
        kind = need
        proven[word] = need
      end
    elseif kind == nil then
      kind = redis.call("TYPE", key)["ok"]
      types[word] = kind
    end
    -- A metrics hash of the wrong type loses its counts, never the batch (the write skips it).
    if kind ~= "none" and kind ~= need and op ~= "hincrby" and not refused[word] then
      refused[word] = true
      conflict("wrongtype", key)
    end
  end
  -- A key of the wrong type is refused already (or a metrics hash skipped): reading it would fail.
  if not kind or kind == "none" or kind == need then
    if why then
      -- (the count was checked above, with the span that needs it)
    elseif op == "zadd" then
      local score = ops[i + 2]
      if not good_scores[score] then
        local number = tonumber(score)
        -- ZADD reads the score with strtod too, but refuses NaN and surrounding blanks.
        if number == nil or number ~= number or not score:match("^%S+$") then
          why = "zadd score " .. score .. " is not a number"
        else
          good_scores[score] = true
        end
      end
    elseif op == "hincrby" then
      for j = i + 4, i + 2 + 2 * n, 2 do
        if not ops[j]:match("^%-?%d+$") then
          why = "hincrby increment " .. ops[j] .. " is not a whole number"
          break
        end
      end
    elseif op == "expire" then
      if count(ops[i + 2]) == nil then why = "expire needs a whole number of seconds from 1, not " .. ops[i + 2] end
    elseif op == "xadd" then
      local maxlen = tonumber(ops[i + 2])
      if maxlen == nil or maxlen < 0 or maxlen % 1 ~= 0 then
        why = "xadd MAXLEN " .. ops[i + 2] .. " is not a whole number"
      elseif n == nil or n > MAX_FIELDS then
        why = "xadd needs 1 to " .. MAX_FIELDS .. " fields, not " .. ops[i + 3]
      end
    end
    if why then
      conflict("invalid", key or word, why)
    elseif op == "version" then
      if read == nil then read = redis.call("HGET", key, "version") end
      if (read or "0") ~= ops[i + 2] then
        conflict("version", key)
      end
    elseif op == "pending" then
      grouped[word] = true
      if read == nil then read = redis.call("XPENDING", key, group, ops[i + 2], ops[i + 2], 1) end
      if #read == 0 then
        conflict("acked", key, ops[i + 2])
      end
    elseif op == "ack" and not grouped[word] and kind == "stream" then
      -- XACK fails on a stream without the group: find out now (NOGROUP), not half way through.
      redis.call("XPENDING", key, group)
      grouped[word] = true
    end
  end
  if op ~= "version" and op ~= "pending" and (op ~= "hincrby" or kind == "none" or kind == "hash") then
    nwrites = nwrites + 1
    write_at[nwrites], write_key[nwrites], write_count[nwrites] = i, key, n
  end
  i = i + span
end
if nconflicts > 0 then
  return conflicts
end

-- command key with the n values (of width arguments each) from ops[from], SLICE at a time.
local function sliced(command, key, from, n, width)
  local last = from + n * width - 1
  local step = SLICE * width
  for first = from, last, step do
    redis.call(command, key, unpack(ops, first, math.min(first + step - 1, last)))
  end
end

local gathered = {}  -- key -> {op = "zadd" or "ack", the score/member pairs or the acked ids}
local gathered_order, ngathered = {}, 0  -- those keys, first gathered first

-- Send what was gathered for key: one ZADD, or one XACK and one XDEL, SLICE pairs at a time.
local function flush(key)
  local batch = gathered[key]
  gathered[key] = nil
  local step = SLICE * 2
  for first = 1, #batch, step do
    local last = math.min(first + step - 1, #batch)
    if batch.op == "ack" then
      redis.call("XACK", key, group, unpack(batch, first, last))
      redis.call("XDEL", key, unpack(batch, first, last))
    else
      redis.call("ZADD", key, unpack(batch, first, last))
    end
  end
end

-- Second pass: the writes, in order.
for w = 1, nwrites do
  i = write_at[w]
  local op, key, n = ops[i], write_key[w], write_count[w]
  local batch = key and gathered[key]
  if batch and batch.op ~= op then
    flush(key)
    batch = nil
  end
  if op == "zadd" or op == "ack" then
    if not batch then
      batch = {op = op}
      gathered[key] = batch
      ngathered = ngathered + 1
      gathered_order[ngathered] = key
    end
    if op == "zadd" then
      batch[#batch + 1] = ops[i + 2]
      batch[#batch + 1] = ops[i + 3]
    else
      batch[#batch + 1] = ops[i + 2]
    end
  elseif op == "exec" then
    redis.call("HSET", key, "execution", ops[i + 3], "version", ops[i + 2])
  elseif op == "rpush" then
    sliced("RPUSH", key, i + 3, n, 1)
  elseif op == "zrem" then
    redis.call("ZREM", key, ops[i + 2])
  elseif op == "sadd" then
    redis.call("SADD", key, ops[i + 2])
  elseif op == "hset" then
    sliced("HSET", key, i + 3, n, 2)
  elseif op == "hincrby" then
    for j = i + 3, i + 1 + 2 * n, 2 do redis.call("HINCRBY", key, ops[j], ops[j + 1]) end
  elseif op == "xadd" then
    if ops[i + 2] == "0" or tonumber(ops[i + 2]) == 0 then
      redis.call("XADD", key, "*", unpack(ops, i + 4, i + 3 + 2 * n))
    else
      redis.call("XADD", key, "MAXLEN", "~", ops[i + 2], "*", unpack(ops, i + 4, i + 3 + 2 * n))
    end
  elseif op == "publish" then
    redis.call("PUBLISH", ops[i + 1], ops[i + 2])
  elseif op == "expire" then
    redis.call("EXPIRE", key, ops[i + 2])
  end
end
for g = 1, ngathered do
  if gathered[gathered_order[g]] then flush(gathered_order[g]) end
end
return {}
