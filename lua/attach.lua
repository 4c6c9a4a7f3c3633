-- attach.lua: store a namespace's hyperparameters once; later callers get the stored ones back.
-- KEYS[1] {cr:<ns>}:meta  KEYS[2] {cr:<ns>}:scores
-- ARGV[1] schema_version  ARGV[2] hypers as JSON  ARGV[3] created_at (unix seconds)
-- ARGV[4..] field, value pairs for meta (the scoring hyperparameters the other scripts read, capacity)
-- The first :scores segment is allocated at its full size (min(capacity, SEGMENT) records) once, so it never
-- regrows; later segments are allocated by the write of their first record (see include_scores.lua).
-- Returns: '' when this call stored the hyperparameters, else the stored hypers JSON.
-- Errors: CR_ALGORITHM when the namespace runs another algorithm (meta 'algorithm' vs the given one);
--   CR_SCHEMA when the namespace was written by another schema version; CR_ARGS on bad input;
--   CR_CORRUPT when meta is missing but the scores exist (never silently re-created); CR_SCHEMA also when
--   :scores holds more than one segment (a layout written before segments: check --repair splits it).
local meta = KEYS[1]
if #KEYS ~= 2 then return redis.error_reply('CR_ARGS attach.lua takes 2 keys, got ' .. #KEYS) end
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
  local length = redis.call('STRLEN', KEYS[2])
  if length > SEGMENT * RECORD then
    return redis.error_reply('CR_SCHEMA ' .. KEYS[2] .. ' holds ' .. (length / RECORD) .. ' slots in one string, ' ..
      'a layout written before scores segments: run curriculum-redis check --repair once to split it')
  end
  -- The stored hypers go back to the caller, who refuses another algorithm with both names in its error.
  return stored
end

-- No meta but pool keys: meta was lost (evicted, deleted). Creating it afresh would wipe the scores and
-- leave the task hashes orphaned; refuse, so an operator repairs or drops the namespace.
if redis.call('EXISTS', KEYS[2]) == 1 then
  return redis.error_reply('CR_CORRUPT ' .. meta .. ' is missing but ' .. KEYS[2] ..
    ' exists: run curriculum-redis check --repair, or drop the namespace')
end

local fields = {'schema_version', ARGV[1], 'hypers', ARGV[2], 'created_at', ARGV[3], 'pool_version', '0',
  'pool_size', '0'}
local capacity
for i = 4, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  if ARGV[i] == 'capacity' then capacity = tonumber(ARGV[i + 1]) end
end
if not capacity or capacity < 1 then return redis.error_reply('CR_ARGS attach.lua needs a positive capacity') end
redis.call('HSET', meta, unpack(fields))
redis.call('DEL', KEYS[2])
redis.call('SETRANGE', KEYS[2], math.min(capacity, SEGMENT) * RECORD - 1, '\0')
return ''
