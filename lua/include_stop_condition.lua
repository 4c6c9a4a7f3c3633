-- include_stop_condition.lua: checks a compiled stop-condition program (an RPN JSON array).
-- KEYS/ARGV: none; not a script. Included into stage_init.lua and stage_record.lua where they hold
-- the line "-- @INCLUDE stop_condition@" (see curriculum_redis/store/scripts.py).
-- Defines check_program(raw) -> program table and whether it reads `seconds`, or nil and what is wrong.
-- Stop-condition programs (the same checks as curriculum_redis.conditions.validate_program). The variables,
-- comparisons and the length limit are the header's COND_VARS, COND_COMPARE and MAX_PROGRAM_TOKENS, which
-- store.scripts renders from curriculum_redis.conditions.
local function size_of(t)
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count
end
-- Returns the program (a table) and whether it reads `seconds`, or nil and what is wrong.
local function check_program(raw)
  local ok, prog = pcall(cjson.decode, raw)
  if not ok or type(prog) ~= 'table' then return nil, 'is not a JSON array' end
  if #prog < 1 or #prog > MAX_PROGRAM_TOKENS or size_of(prog) ~= #prog then
    return nil, 'must be an array of 1 to ' .. MAX_PROGRAM_TOKENS .. ' instructions'
  end
  local types, top, seconds = {}, 0, false
  for i, step in ipairs(prog) do
    if type(step) ~= 'table' or #step ~= 2 or size_of(step) ~= 2 then
      return nil, 'instruction ' .. i .. ' is not a [kind, argument] pair'
    end
    local kind, arg = step[1], step[2]
    if kind == 'var' then
      if type(arg) ~= 'string' or not COND_VARS[arg] then return nil, 'instruction ' .. i .. ': unknown variable' end
      if arg == 'seconds' then seconds = true end
      top = top + 1; types[top] = 'n'
    elseif kind == 'num' then
      if type(arg) ~= 'number' or arg ~= arg or arg == math.huge or arg == -math.huge then
        return nil, 'instruction ' .. i .. ': not a finite number'
      end
      top = top + 1; types[top] = 'n'
    elseif kind == 'op' then
      local arity, want
      if arg == 'not' then arity, want = 1, 'b'
      elseif arg == 'and' or arg == 'or' then arity, want = 2, 'b'
      elseif type(arg) == 'string' and COND_COMPARE[arg] then arity, want = 2, 'n'
      else return nil, 'instruction ' .. i .. ': unknown operator' end
      if top < arity then return nil, 'instruction ' .. i .. ': stack underflow' end
      for k = top - arity + 1, top do
        if types[k] ~= want then return nil, 'instruction ' .. i .. ': operand of the wrong type' end
      end
      top = top - arity + 1; types[top] = 'b'
    else
      return nil, 'instruction ' .. i .. ': unknown kind'
    end
  end
  if top ~= 1 or types[1] ~= 'b' then return nil, 'does not leave exactly one boolean' end
  return prog, seconds
end
