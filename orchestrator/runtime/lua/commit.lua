-- commit.lua: apply a batch of execution transitions atomically, or nothing at all.
--
-- KEYS: every key the batch touches; operations below name a key by its index in KEYS.
-- ARGV[1]: the consumer group whose pending entries the batch consumes ("orchestrators").
-- ARGV[2]: a JSON array of strings: a flat list of operations, each an opcode followed by
--          its arguments (one JSON argument, because the client packs each argument slowly):
--
--   checks (all run first; if any fails nothing is written):
--     version  <k> <expected>            HGET KEYS[k] version equals expected ("0" = no such execution)
--     pending  <k> <id>                  entry id of stream KEYS[k] is still pending in the group
--   and every key a write touches must be absent or of the type the write needs, because a
--   script is not rolled back: a write that failed half way would leave half a batch.
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
--
-- Returns {} when the batch was applied; otherwise a flat list of conflicts, each
-- "version" <key> or "acked" <key> <id> (the caller reloads and recomputes), or
-- "wrongtype" <key> (a key holds something else: the batch can never apply as it is).

local group = ARGV[1]
local ops = cjson.decode(ARGV[2])

-- How many arguments follow each opcode; -1 marks a counted list whose length is read.
local fixed = {version = 2, pending = 2, exec = 3, zadd = 3, zrem = 2, sadd = 2, publish = 2, ack = 2}

local function span(i)
  local op = ops[i]
  if fixed[op] then
    return fixed[op] + 1
  elseif op == "rpush" then
    return 3 + tonumber(ops[i + 2])
  elseif op == "hset" then
    return 3 + 2 * tonumber(ops[i + 2])
  elseif op == "xadd" then
    return 4 + 2 * tonumber(ops[i + 3])
  end
  error("commit.lua: unknown opcode " .. tostring(op))
end

local function key(i)
  return KEYS[tonumber(ops[i])]
end

-- The type each write needs its key to have (or to be absent).
local needs = {exec = "hash", hset = "hash", rpush = "list", zadd = "zset", zrem = "zset",
               sadd = "set", xadd = "stream", ack = "stream"}
local typed = {}

local conflicts = {}
local i = 1
while i <= #ops do
  local op = ops[i]
  local need = needs[op]
  if need and typed[ops[i + 1]] == nil then
    typed[ops[i + 1]] = true
    local actual = redis.call("TYPE", key(i + 1))["ok"]
    if actual ~= "none" and actual ~= need then
      table.insert(conflicts, "wrongtype")
      table.insert(conflicts, key(i + 1))
    end
  end
  if op == "version" then
    local current = redis.call("HGET", key(i + 1), "version") or "0"
    if current ~= ops[i + 2] then
      table.insert(conflicts, "version")
      table.insert(conflicts, key(i + 1))
    end
  elseif op == "pending" then
    local entry = redis.call("XPENDING", key(i + 1), group, ops[i + 2], ops[i + 2], 1)
    if #entry == 0 then
      table.insert(conflicts, "acked")
      table.insert(conflicts, key(i + 1))
      table.insert(conflicts, ops[i + 2])
    end
  end
  i = i + span(i)
end
if #conflicts > 0 then
  return conflicts
end

local function slice(from, count)
  local out = {}
  for j = from, from + count - 1 do
    out[#out + 1] = ops[j]
  end
  return out
end

i = 1
while i <= #ops do
  local op = ops[i]
  if op == "exec" then
    redis.call("HSET", key(i + 1), "execution", ops[i + 3], "version", ops[i + 2])
  elseif op == "rpush" then
    redis.call("RPUSH", key(i + 1), unpack(slice(i + 3, tonumber(ops[i + 2]))))
  elseif op == "zadd" then
    redis.call("ZADD", key(i + 1), ops[i + 2], ops[i + 3])
  elseif op == "zrem" then
    redis.call("ZREM", key(i + 1), ops[i + 2])
  elseif op == "sadd" then
    redis.call("SADD", key(i + 1), ops[i + 2])
  elseif op == "hset" then
    redis.call("HSET", key(i + 1), unpack(slice(i + 3, 2 * tonumber(ops[i + 2]))))
  elseif op == "xadd" then
    local pairs_ = slice(i + 4, 2 * tonumber(ops[i + 3]))
    if ops[i + 2] == "0" then
      redis.call("XADD", key(i + 1), "*", unpack(pairs_))
    else
      redis.call("XADD", key(i + 1), "MAXLEN", "~", ops[i + 2], "*", unpack(pairs_))
    end
  elseif op == "publish" then
    redis.call("PUBLISH", ops[i + 1], ops[i + 2])
  elseif op == "ack" then
    redis.call("XACK", key(i + 1), group, ops[i + 2])
    redis.call("XDEL", key(i + 1), ops[i + 2])
  end
  i = i + span(i)
end
return {}
