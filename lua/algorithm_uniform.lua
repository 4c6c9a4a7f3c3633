-- algorithm_uniform.lua: uniform sampling keeps no per-task state; its score is always 0.
-- KEYS/ARGV: none; spliced into record_outcomes.lua, which owns them (see store.scripts.record_script).
-- Returns: nothing itself; update() returns 0.
-- Mirrors curriculum_redis.algorithms.uniform.Uniform.update.
local ALGORITHM = 'uniform'
local SCORE_FIELD = 'score'
local STATE_FIELDS = {}
local HYPERS = {}
local function update(s, x, success, hp, clock)
  return 0.0
end
