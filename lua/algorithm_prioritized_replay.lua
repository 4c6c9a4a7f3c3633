-- algorithm_prioritized_replay.lua: the prioritized-level-replay update of one outcome.
-- KEYS/ARGV: none; spliced into record_outcomes.lua, which owns them (see store.scripts.record_script).
-- Returns: nothing itself; update() returns the task's new score (replaced, or averaged by an EMA).
-- Mirrors curriculum_redis.algorithms.prioritized_replay.PrioritizedReplay.update (bit-identical doubles).
local ALGORITHM = 'prioritized_replay'
local SCORE_FIELD = 'score'
local STATE_FIELDS = {'success_ema'}
local HYPERS = {'score_update', 'score_ema_alpha', 'tracker_ema_alpha'}
local function update(s, x, success, hp, clock)
  if s.n == 0 then
    s.success_ema = success
    return x
  end
  s.success_ema = s.success_ema + hp.tracker_ema_alpha * (success - s.success_ema)
  if hp.score_update == 'replace' then return x end
  return s.score + hp.score_ema_alpha * (x - s.score)
end
