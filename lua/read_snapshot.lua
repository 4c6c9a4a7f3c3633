-- read_snapshot.lua: the pool version, the packed scores of the first slots and the episode clock, atomically.
-- The caller reads the rest of the pool (slots up to pool_size) from :scores and its segments
-- (include_scores.lua), one bounded command at a time, so no call blocks the server for the whole pool.
-- KEYS[1] {cr:<ns>}:meta  KEYS[2] {cr:<ns>}:scores  KEYS[3] {cr:<ns>}:counters
-- ARGV[1] (optional) the most bytes of scores to return (see RedisStore.snapshot)
-- Returns: {pool_version, scores, algorithm (meta's; '' if unset), episode clock, bytes of the pool's slots
--   (pool_size records, in :scores and its segments)}: scores
--   packs one record per slot (RECORD bytes: RECORD_FIELDS little-endian doubles): task_id, label_hash,
--   completions, score_sum, last_score, consecutive_failures, last_episode, the algorithm's score, its state
--   fields (see curriculum_redis.algorithms.base); task_id 0 marks an empty slot. The episode clock is
--   counters' num_completed. pool_version is -1 when the namespace has no hyperparameters.
if #KEYS ~= 3 then return redis.error_reply('CR_ARGS read_snapshot.lua takes 3 keys') end
local limit = tonumber(ARGV[1])
if ARGV[1] and (not limit or limit < RECORD or limit % RECORD ~= 0) then
  return redis.error_reply('CR_ARGS read_snapshot.lua: the byte limit must be a multiple of ' .. RECORD)
end
local m = redis.call('HMGET', KEYS[1], 'pool_version', 'algorithm', 'pool_size')
if not m[1] then return {-1, '', '', 0, 0} end
local scores
if limit then scores = redis.call('GETRANGE', KEYS[2], 0, limit - 1) else scores = redis.call('GET', KEYS[2]) or '' end
return {tonumber(m[1]), scores, m[2] or '', tonumber(redis.call('HGET', KEYS[3], 'num_completed')) or 0,
  (tonumber(m[3]) or 0) * RECORD}
