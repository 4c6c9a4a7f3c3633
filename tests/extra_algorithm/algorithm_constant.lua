-- algorithm_constant.lua: the test algorithm's update of one outcome (its score is the last outcome).
-- KEYS/ARGV: none; spliced into record_outcomes.lua, which owns them (see store.scripts.record_script).
-- Returns: nothing itself; update() returns the outcome.
-- Mirrors tests/extra_algorithm/constant.py, Constant.update (bit-identical doubles).
local ALGORITHM = 'constant'
local SCORE_FIELD = 'last_outcome'
local STATE_FIELDS = {'shifted'}
local HYPERS = {'value'}
local function update(s, x, success, hp, clock)
  s.shifted = x + hp.value
  return x
end
