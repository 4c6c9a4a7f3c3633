-- evict_and_replace.lua: remove one task and create its replacement in the same slot, atomically.
-- KEYS[1] {cr:<ns>}:meta  KEYS[2] :counters  KEYS[3] :scores  KEYS[4] :labels
-- KEYS[5] :task:<victim_id>  KEYS[6] :task:<new_id>  KEYS[7] :label:<victim label_hash>
-- KEYS[8] :label:<new label_hash>  KEYS[9 + k - 1] :scores:<k> for k = 1..ceil(capacity / SEGMENT) - 1
-- ARGV[1] victim_id  ARGV[2] victim label_hash  ARGV[3] new_id  ARGV[4] new label_hash
-- ARGV[5] new label string  ARGV[6] reason: 'low_score' or 'failures'
-- ARGV[7] min_presentations  ARGV[8] max_score: the highest score (record field 8, the algorithm's headline
--   score: LP for learning progress) the victim may have now  ARGV[9] min_failures
-- The new keys expire like the rest of the namespace when meta holds ttl_ms (see RedisStore.touch).
-- Returns: 'evicted', or why nothing happened: 'victim_gone' (another process evicted it first),
--   'victim_not_evictable' (it no longer qualifies on the server), 'replacement_exists'.
-- Errors (before any write): CR_NO_NAMESPACE, CR_FENCED (see fence_namespace.lua), CR_ARGS, CR_SEGMENTS,
--   CR_LABEL, CR_CORRUPT, CR_OVERFLOW.
local meta, counters, labels = KEYS[1], KEYS[2], KEYS[4]
local victim, fresh, victim_label, fresh_label = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
-- @INCLUDE scores@
-- @INCLUDE new_task@
-- @INCLUDE counts@
-- @INCLUDE fence@
local function err(msg) return redis.error_reply('CR_ARGS evict_and_replace.lua: ' .. msg) end
if #KEYS < 8 or #ARGV ~= 9 then return err('takes 8 keys (then the scores segments) and 9 args') end
local victim_id, new_id, new_hash, new_label = ARGV[1], ARGV[3], ARGV[4], ARGV[5]
local reason = ARGV[6]
local min_presentations, max_score, min_failures = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local new_num, hash_num = tonumber(new_id), tonumber(new_hash)
if not tonumber(victim_id) or not new_num or new_num < 1 or new_num ~= math.floor(new_num) then
  return err('task ids must be positive integers')
end
if not hash_num or hash_num ~= math.floor(hash_num) then return err('label hash must be an integer') end
if reason ~= 'low_score' and reason ~= 'failures' then return err('unknown reason ' .. tostring(reason)) end
if not min_presentations or not max_score or not min_failures then return err('thresholds must be numbers') end
local m = redis.call('HMGET', meta, 'capacity', 'ttl_ms', 'fields', 'fence_until_ms')
if not m[1] then return redis.error_reply('CR_NO_NAMESPACE no hyperparameters stored') end
local fenced = fence_refusal(m[4])
if fenced then return fenced end
local ttl_ms = tonumber(m[2])
local bad_segments = use_segments(3, 9, tonumber(m[1]))
if bad_segments then return bad_segments end

local v = redis.call('HMGET', victim, 'label_hash', 'completions', 'slot', 'consecutive_failures')
if not v[1] then return 'victim_gone' end
if redis.call('EXISTS', fresh) == 1 then return 'replacement_exists' end
local slot = v[3]
local record = tonumber(slot) and read_record(tonumber(slot))
if not record then
  return redis.error_reply('CR_CORRUPT ' .. victim .. ' has no slot, or its scores segment is missing: run ' ..
    'curriculum-redis check --repair')
end
if v[1] ~= ARGV[2] then
  return redis.error_reply('CR_LABEL victim ' .. victim_id .. ' has label hash ' .. tostring(v[1]) ..
    ', the request says ' .. ARGV[2])
end
local qualifies
if reason == 'failures' then
  qualifies = tonumber(v[4]) >= min_failures
else
  local score = struct.unpack(DOUBLE, record, SCORE_OFFSET + 1)
  qualifies = tonumber(v[2]) >= min_presentations and score <= max_score
end
if not qualifies then return 'victim_not_evictable' end

local refused = counts_fit({{victim_label, 'evicted', 1}, {victim_label, 'active', -1}, {fresh_label, 'created', 1},
  {fresh_label, 'active', 1}, {counters, 'num_evicted', 1}, {counters, 'num_created', 1}, {meta, 'pool_version', 1}})
if refused then return refused end

-- The victim leaves nothing behind: its hash is deleted and its slot record overwritten whole.
redis.call('DEL', victim)
redis.call('HINCRBY', victim_label, 'evicted', 1)
redis.call('HINCRBY', victim_label, 'active', -1)

new_task(fresh, fresh_label, labels, slot, new_id, new_hash, new_label, meta_zero_fields(m[3]), ttl_ms)
redis.call('HINCRBY', counters, 'num_evicted', 1)
redis.call('HINCRBY', counters, 'num_created', 1)
redis.call('HINCRBY', meta, 'pool_version', 1)
return 'evicted'
