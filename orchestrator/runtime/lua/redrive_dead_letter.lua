-- redrive_dead_letter.lua: send one dead letter back to its queue as a new message, exactly once.
--
-- KEYS[1]: the dead-letter stream   {p}:dlq:<queue>   (fields: body, message_id, queue, reason,
--                                                      receive_count)
-- KEYS[2]: the source queue stream  {p}:queue:<queue> (field: body)
-- ARGV[1]: the dead letter's entry id
-- ARGV[2]: the field that holds a message's body ("body")
--
-- Returns the new message's id, or false when the letter is gone (redriven or purged by
-- someone else), so two people redriving at once never send one letter twice.

local entry = redis.call("XRANGE", KEYS[1], ARGV[1], ARGV[1])
if #entry == 0 then
  return false
end
local fields = entry[1][2]
local body = nil
for i = 1, #fields, 2 do
  if fields[i] == ARGV[2] then
    body = fields[i + 1]
  end
end
if body == nil then
  return false
end
local id = redis.call("XADD", KEYS[2], "*", ARGV[2], body)
redis.call("XDEL", KEYS[1], ARGV[1])
return id
