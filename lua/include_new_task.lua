-- include_new_task.lua: writes a new task into a pool slot.
-- KEYS/ARGV: none; not a script. Included into create_tasks.lua and evict_and_replace.lua where they hold
-- the line "-- @INCLUDE new_task@" (see curriculum_redis/store/scripts.py).
-- Defines meta_zero_fields(csv) and new_task(task_key, label_key, labels, slot, id, hash, label, zeros,
--   ttl_ms). Needs include_scores.lua (write_record) included before it.

-- A new task's algorithm fields (meta 'fields', comma-separated) as HSET field/value pairs, all 0.
local function meta_zero_fields(csv)
  local zeros = {}
  for name in string.gmatch(csv or '', '[^,]+') do
    zeros[#zeros + 1] = name
    zeros[#zeros + 1] = 0
  end
  return zeros
end

-- Every record field after task_id and label_hash starts at 0.
local NEW_RECORD_ZEROS = {}
for i = 1, RECORD_FIELDS - 2 do NEW_RECORD_ZEROS[i] = 0 end

-- Task `id` (label hash `hash`, as given in ARGV; label string `label`) enters `slot`: its hash (the
-- store's fields, then `zeros`), its record, the label's name and counts. The new keys expire after
-- ttl_ms when it is set (see RedisStore.touch).
local function new_task(task_key, label_key, labels, slot, id, hash, label, zeros, ttl_ms)
  redis.call('HSET', task_key, 'label_hash', hash, 'slot', slot, 'completions', 0, 'score_sum', 0, 'last_score', 0,
    'consecutive_failures', 0, 'last_episode', 0, unpack(zeros))
  write_record(tonumber(slot), struct.pack(PACK, tonumber(id), tonumber(hash), unpack(NEW_RECORD_ZEROS)), ttl_ms)
  redis.call('HSETNX', labels, hash, label)
  redis.call('HSETNX', label_key, 'label', label)
  redis.call('HINCRBY', label_key, 'created', 1)
  redis.call('HINCRBY', label_key, 'active', 1)
  if ttl_ms then
    redis.call('PEXPIRE', task_key, ttl_ms)
    redis.call('PEXPIRE', label_key, ttl_ms)
  end
end
