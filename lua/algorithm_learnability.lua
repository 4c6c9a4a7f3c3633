-- algorithm_learnability.lua: the learnability update of one outcome, p (1 - p) of the success EMA.
-- KEYS/ARGV: none; spliced into record_outcomes.lua, which owns them (see store.scripts.record_script).
-- Returns: nothing itself; update() returns the task's new learnability.
-- Mirrors curriculum_redis.algorithms.learnability.Learnability.update (bit-identical doubles).
local ALGORITHM = 'learnability'
local SCORE_FIELD = 'learnability'
local STATE_FIELDS = {'success_ema'}
local HYPERS = {'success_ema_alpha'}
local function update(s, x, success, hp, clock)
  local p = success
  if s.n > 0 then p = s.success_ema + hp.success_ema_alpha * (success - s.success_ema) end
  s.success_ema = p
  return p * (1.0 - p)
end
