-- algorithm_frontier.lua: the frontier-LP update of one outcome (fast/slow success EMAs, square, wins).
-- KEYS/ARGV: none; spliced into record_outcomes.lua, which owns them (see store.scripts.record_script).
-- Returns: nothing itself; update() returns the task's new score, max(0, |fast - slow| - z sd) + w fast (1 - fast)^2.
-- Mirrors curriculum_redis.algorithms.frontier.Frontier.update operation for operation (bit-identical doubles);
-- gap_noise is computed once in Python (gap_noise_factor) and read from meta.
local ALGORITHM = 'frontier'
local SCORE_FIELD = 'frontier'
local STATE_FIELDS = {'fast', 'slow', 'sq', 'wins'}
local HYPERS = {'fast_alpha', 'slow_alpha', 'gap_noise', 'gap_z', 'low_success_weight'}
local function update(s, x, success, hp, clock)
  local v = success
  if s.n == 0 then
    s.fast, s.slow, s.sq, s.wins = v, v, v * v, v
  else
    s.fast = s.fast + hp.fast_alpha * (v - s.fast)
    s.slow = s.slow + hp.slow_alpha * (v - s.slow)
    s.sq = s.sq + hp.slow_alpha * (v * v - s.sq)
    s.wins = s.wins + v
  end
  local sd = math.sqrt(hp.gap_noise * math.max(0.0, s.sq - s.slow * s.slow))
  local gap = math.max(0.0, math.abs(s.fast - s.slow) - hp.gap_z * sd)
  return gap + hp.low_success_weight * s.fast * (1.0 - s.fast) * (1.0 - s.fast)
end
