-- algorithm_learning_progress.lua: the learning-progress update of one outcome.
-- KEYS/ARGV: none; spliced into record_outcomes.lua, which owns them (see store.scripts.record_script).
-- Returns: nothing itself; update() returns the task's new LP (its headline score).
-- Mirrors curriculum_redis.algorithms.learning_progress.apply_outcome operation for operation (bit-identical
-- doubles); 0.75 is its FIRST_SCORE_BASELINE_CAP.
local ALGORITHM = 'learning_progress'
local SCORE_FIELD = 'lp'
local STATE_FIELDS = {'reward_ema', 'reward_sq_ema', 'success_ema', 'p_fast', 'p_slow', 'p_true', 'baseline'}
local HYPERS = {'scorer', 'ema_timescale', 'slow_timescale_factor', 'tracker_ema_alpha', 'random_baseline',
  'early_progress_amplification'}
local function reweight(p, theta) return p * (1.0 - theta) / (p + theta * (1.0 - 2.0 * p)) end
local function update(s, x, success, hp, clock)
  local a, k, ta = hp.ema_timescale, hp.slow_timescale_factor, hp.tracker_ema_alpha
  if s.n == 0 then
    if hp.random_baseline then s.baseline = hp.random_baseline else s.baseline = math.min(x, 0.75) end
    local p = math.max(x - s.baseline, 0.0) / math.max(1.0 - s.baseline, 1e-10)
    s.reward_ema, s.reward_sq_ema, s.success_ema = x, x * x, success
    s.p_fast, s.p_slow, s.p_true = p, p, x
  else
    local p = math.max(x - s.baseline, 0.0) / math.max(1.0 - s.baseline, 1e-10)
    s.reward_ema = s.reward_ema + ta * (x - s.reward_ema)
    s.reward_sq_ema = s.reward_sq_ema + ta * (x * x - s.reward_sq_ema)
    s.success_ema = s.success_ema + ta * (success - s.success_ema)
    s.p_fast = s.p_fast + a * (p - s.p_fast)
    s.p_slow = s.p_slow + a * k * (p - s.p_slow)
    s.p_true = s.p_true + a * (x - s.p_true)
  end
  if hp.scorer == 'bidirectional' then
    local theta = hp.early_progress_amplification
    return math.abs(reweight(s.p_fast, theta) - reweight(s.p_slow, theta))
  end
  return math.sqrt(math.max(0.0, s.reward_sq_ema - s.reward_ema * s.reward_ema))
end
