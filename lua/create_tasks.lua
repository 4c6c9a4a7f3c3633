-- create_tasks.lua: add new tasks to the pool until it reaches capacity.
-- KEYS[1] {cr:<ns>}:meta  KEYS[2] :counters  KEYS[3] :scores  KEYS[4] :labels
-- KEYS[5 + 2(i-1)] :task:<id_i>   KEYS[6 + 2(i-1)] :label:<label_hash_i>   for i = 1..n
-- KEYS[5 + 2n + k - 1] :scores:<k> for k = 1..ceil(capacity / SEGMENT) - 1 (see include_scores.lua)
-- ARGV[1] n, then per task i: task_id, label_hash, label string
-- New keys expire like the rest of the namespace when meta holds ttl_ms (see RedisStore.touch).
-- Returns: the ids created, in order. Ids already in the pool are skipped; creation stops at capacity.
-- Errors, all before the first write: CR_NO_NAMESPACE (no hyperparameters stored), CR_FENCED (an admin is
--   dropping or replacing the namespace: see fence_namespace.lua), CR_ARGS (bad ids or
--   counts), CR_SEGMENTS (segment keys missing), CR_CORRUPT (a used slot past pool_size, a lost segment, a
--   count that is not one), CR_OVERFLOW.
local meta, counters, labels = KEYS[1], KEYS[2], KEYS[4]
local n = tonumber(ARGV[1])
if not n or n < 0 or n ~= math.floor(n) then return redis.error_reply('CR_ARGS n must be a count') end
if #KEYS < 4 + 2 * n or #ARGV ~= 1 + 3 * n then
  return redis.error_reply('CR_ARGS create_tasks.lua: ' .. n .. ' tasks need ' .. (4 + 2 * n) ..
    ' keys and ' .. (1 + 3 * n) .. ' args, got ' .. #KEYS .. ' and ' .. #ARGV)
end
local m = redis.call('HMGET', meta, 'capacity', 'pool_size', 'ttl_ms', 'fields', 'fence_until_ms')
local ttl_ms = tonumber(m[3])
local capacity = tonumber(m[1])
if not capacity then return redis.error_reply('CR_NO_NAMESPACE no hyperparameters stored') end
-- @INCLUDE scores@
-- @INCLUDE new_task@
-- @INCLUDE counts@
-- @INCLUDE fence@
local fenced = fence_refusal(m[5])
if fenced then return fenced end
local refused = use_segments(3, 5 + 2 * n, capacity)
if refused then return refused end
local zeros = meta_zero_fields(m[4])

for i = 1, n do
  local id, h = tonumber(ARGV[2 + 3 * (i - 1)]), tonumber(ARGV[3 + 3 * (i - 1)])
  if not id or id < 1 or id > MAX_TASK_ID or id ~= math.floor(id) then
    return redis.error_reply('CR_ARGS task id ' .. tostring(ARGV[2 + 3 * (i - 1)]) .. ' is not in [1, 2^53)')
  end
  if not h or h < 0 or h ~= math.floor(h) then
    return redis.error_reply('CR_ARGS label hash ' .. tostring(ARGV[3 + 3 * (i - 1)]) .. ' is not an integer')
  end
end

local size = tonumber(m[2]) or 0
local free = math.min(n, capacity - size)
for slot = size, size + free - 1 do
  -- Slots [size, size + free) must be empty: a non-empty one means the pool and scores disagree. Their
  -- segment may be new only from its first slot on: else it was lost with the records before `slot`.
  local raw = read_record(slot)
  if raw and struct.unpack(DOUBLE, raw) ~= 0 then
    return redis.error_reply('CR_CORRUPT slot ' .. slot .. ' is in use beyond pool_size')
  end
  if not raw and slot % SEGMENT ~= 0 and slot == size then
    return redis.error_reply('CR_CORRUPT the scores segment of slot ' .. slot .. ' is missing: run curriculum-redis check')
  end
end

-- Every count incremented below must stay a count: checked before the first write.
local to_create, per_label, seen = 0, {}, {}
for i = 1, n do
  if size + to_create >= capacity then break end
  local task, label_key = KEYS[5 + 2 * (i - 1)], KEYS[6 + 2 * (i - 1)]
  if not seen[task] and redis.call('EXISTS', task) == 0 then
    seen[task] = true
    to_create = to_create + 1
    per_label[label_key] = (per_label[label_key] or 0) + 1
  end
end
local increments = {{counters, 'num_created', to_create}, {meta, 'pool_version', 1}}
for label_key, count in pairs(per_label) do
  increments[#increments + 1] = {label_key, 'created', count}
  increments[#increments + 1] = {label_key, 'active', count}
end
refused = counts_fit(increments)
if refused then return refused end

local created = {}
for i = 1, n do
  if size >= capacity then break end
  local id = ARGV[2 + 3 * (i - 1)]
  local task, label_key = KEYS[5 + 2 * (i - 1)], KEYS[6 + 2 * (i - 1)]
  if redis.call('EXISTS', task) == 0 then
    local h, label = ARGV[3 + 3 * (i - 1)], ARGV[4 + 3 * (i - 1)]
    new_task(task, label_key, labels, size, id, h, label, zeros, ttl_ms)
    size = size + 1
    created[#created + 1] = id
  end
end
if #created > 0 then
  redis.call('HINCRBY', counters, 'num_created', #created)
  redis.call('HINCRBY', meta, 'pool_version', 1)
  redis.call('HSET', meta, 'pool_size', size)
end
return created
