-- read_snapshot.lua: the pool version, the packed scores of every slot and the episode clock, atomically.
-- KEYS[1] {cr:<ns>}:meta  KEYS[2] {cr:<ns>}:scores  KEYS[3] {cr:<ns>}:counters
-- ARGV: none
-- Returns: {pool_version, scores, algorithm (meta's; '' if unset), episode clock}: scores packs one
--   record per slot (RECORD bytes: RECORD_FIELDS little-endian doubles): task_id, label_hash, completions,
--   score_sum, last_score, consecutive_failures, last_episode, the algorithm's score, its state fields (see
--   curriculum_redis.algorithms.base); task_id 0 marks an empty slot. The episode clock is counters'
--   num_completed. pool_version is -1 when the namespace has no hyperparameters.
if #KEYS ~= 3 then return redis.error_reply('CR_ARGS read_snapshot.lua takes 3 keys') end
local m = redis.call('HMGET', KEYS[1], 'pool_version', 'algorithm')
if not m[1] then return {-1, '', '', 0} end
return {tonumber(m[1]), redis.call('GET', KEYS[2]) or '', m[2] or '',
  tonumber(redis.call('HGET', KEYS[3], 'num_completed')) or 0}
