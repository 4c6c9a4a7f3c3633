-- read_snapshot.lua: the pool version and the packed scores of every slot, read atomically.
-- KEYS[1] {cr:<ns>}:meta  KEYS[2] {cr:<ns>}:scores
-- ARGV: none
-- Returns: {pool_version, scores}: scores packs one 112-byte record per slot, 14 little-endian doubles:
--   task_id, label_hash, completions, lp, p_true, success_ema, score_sum, consecutive_failures,
--   reward_ema, reward_sq_ema, p_fast, p_slow, baseline, last_score
--   (task_id 0 marks an empty slot). pool_version is -1 when the namespace has no hyperparameters.
if #KEYS ~= 2 then return redis.error_reply('CR_ARGS read_snapshot.lua takes 2 keys') end
local version = redis.call('HGET', KEYS[1], 'pool_version')
if not version then return {-1, ''} end
return {tonumber(version), redis.call('GET', KEYS[2]) or ''}
