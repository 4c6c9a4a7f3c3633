-- attach.lua: store a namespace's hyperparameters once; later callers get the stored ones back.
-- KEYS[1] {cr:<ns>}:meta
-- ARGV[1] schema_version  ARGV[2] hypers as JSON  ARGV[3] created_at (unix seconds)
-- ARGV[4..] field, value pairs for meta (the scoring hyperparameters the other scripts read, capacity)
-- Returns: '' when this call stored the hyperparameters, else the stored hypers JSON.
-- Errors: CR_SCHEMA when the namespace was written by another schema version; CR_ARGS on bad input.
local meta = KEYS[1]
if #KEYS ~= 1 then return redis.error_reply('CR_ARGS attach.lua takes 1 key, got ' .. #KEYS) end
if #ARGV < 3 or (#ARGV - 3) % 2 ~= 0 then
  return redis.error_reply('CR_ARGS attach.lua takes schema, hypers, created_at and field/value pairs')
end
if not tonumber(ARGV[1]) or not tonumber(ARGV[3]) then
  return redis.error_reply('CR_ARGS schema_version and created_at must be numbers')
end

local stored = redis.call('HGET', meta, 'hypers')
if stored then
  local schema = redis.call('HGET', meta, 'schema_version')
  if schema ~= ARGV[1] then
    return redis.error_reply('CR_SCHEMA namespace holds schema_version ' .. tostring(schema) ..
      ', this client writes schema_version ' .. ARGV[1])
  end
  return stored
end

local fields = {'schema_version', ARGV[1], 'hypers', ARGV[2], 'created_at', ARGV[3], 'pool_version', '0'}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', meta, unpack(fields))
return ''
