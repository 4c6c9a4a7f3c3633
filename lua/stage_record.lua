-- stage_record.lua: record episodes of a stage curriculum and advance the stage, atomically, at most
-- once per (client_id, seq).
-- KEYS[1] {cr:<ns>}:stage  KEYS[2] :stage:window  KEYS[3] :stage:config  KEYS[4] :stage:history
-- KEYS[5] :stage:clients
-- ARGV[1] config fingerprint  ARGV[2] client_id  ARGV[3] seq (int >= 1)  ARGV[4] now (unix seconds)
-- ARGV[5] E (episodes, int >= 1), then per episode: the index of the stage it was played in
--   (int in [0, num_stages)), success ('1' or '0') and, in the 3-field layout (5 + 3E args), its score
--   (a finite number); in the 2-field layout (5 + 2E args) an episode's score is its success (1 or 0).
-- An episode of the current stage updates the stage's counts (episodes, successes, score_sum), its window
-- (its last W outcomes, newest first) and may advance the stage (never the last one):
--   * a stage with a stop condition (config "<i>:program", an RPN program, see
--     curriculum_redis/conditions.py) advances exactly when the program is true on episodes, successes,
--     success (window success rate), window (outcomes in the window), score (score_sum / episodes) and
--     seconds (Redis TIME - entered_server_at; TIME is only called when the program reads `seconds`);
--   * any other stage advances when episodes >= min_episodes, the window is full and its success rate is
--     >= advance_threshold.
-- Advancing empties the window, resets the stage's counts and bumps the version. An episode of any other
-- stage is stale: counted, not applied.
-- Returns: {applied (1, or 0 for an already-applied batch), current stage index, version,
--   episodes applied, stale episodes, advancements made by this call}
-- Errors (raised before any write): CR_ARGS, CR_NO_STAGE (no state: init first),
--   CR_STAGE_CONFIG (the stored config has another fingerprint, or a stored program is malformed),
--   CR_CORRUPT (a stored count that is not one), CR_OVERFLOW (a count that would pass 2^53).
local stage, window, config, history, clients = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local function fmt(x) return string.format('%.17g', x) end
local function err(msg) return redis.error_reply('CR_ARGS stage_record.lua: ' .. msg) end
local function is_int(s) return type(s) == 'string' and string.match(s, '^%d+$') ~= nil end
local function finite(x) return x ~= nil and x == x and x ~= math.huge and x ~= -math.huge end

-- @INCLUDE stop_condition@
-- @INCLUDE stage_check@
-- @INCLUDE counts@
-- Runs a validated program on the variables' values.
local function run(prog, vals)
  local stack, top = {}, 0
  for _, step in ipairs(prog) do
    local kind, arg = step[1], step[2]
    if kind == 'var' then
      top = top + 1; stack[top] = vals[arg]
    elseif kind == 'num' then
      top = top + 1; stack[top] = arg
    elseif arg == 'not' then
      stack[top] = not stack[top]
    else
      local b = stack[top]
      top = top - 1
      local a, r = stack[top], nil
      if arg == 'and' then r = a and b
      elseif arg == 'or' then r = a or b
      elseif arg == '>=' then r = a >= b
      elseif arg == '>' then r = a > b
      elseif arg == '<=' then r = a <= b
      elseif arg == '<' then r = a < b
      elseif arg == '==' then r = a == b
      else r = a ~= b end
      stack[top] = r
    end
  end
  return stack[1] == true
end

-- 1. Validate everything; nothing is written until the batch is known to be well formed.
if #KEYS ~= 5 then return err('takes 5 keys, got ' .. #KEYS) end
if #ARGV < 5 then return err('takes at least 5 args, got ' .. #ARGV) end
local fingerprint, client_id, now = ARGV[1], ARGV[2], tonumber(ARGV[4])
if not is_int(client_id) then return err('client_id must be a non-negative integer') end
if not is_int(ARGV[3]) or tonumber(ARGV[3]) < 1 then return err('seq must be an integer >= 1') end
local seq = tonumber(ARGV[3])
if not now or now ~= now then return err('now must be a number') end
if not is_int(ARGV[5]) or tonumber(ARGV[5]) < 1 then return err('episode count must be an integer >= 1') end
local e = tonumber(ARGV[5])
if #ARGV ~= 5 + 2 * e and #ARGV ~= 5 + 3 * e then
  return err('expected ' .. (5 + 2 * e) .. ' or ' .. (5 + 3 * e) .. ' args for ' .. e .. ' episodes, got ' .. #ARGV)
end
local fields = (#ARGV == 5 + 3 * e) and 3 or 2

local n, refusal = stored_stages(config, stage, fingerprint)
if not n then return refusal end
local st = redis.call('HMGET', stage, 'index', 'version', 'episodes', 'window_successes', 'successes', 'score_sum',
  'entered_server_at')
local episodes = {}
for j = 1, e do
  local base = 6 + fields * (j - 1)
  local raw_index, raw_success = ARGV[base], ARGV[base + 1]
  if not is_int(raw_index) or tonumber(raw_index) >= n then
    return err('episode ' .. j .. ': stage index ' .. tostring(raw_index) .. ' is not an integer in [0, ' .. n .. ')')
  end
  if raw_success ~= '1' and raw_success ~= '0' then
    return err('episode ' .. j .. ': success must be 1 or 0, got ' .. tostring(raw_success))
  end
  local score = tonumber(raw_success)
  if fields == 3 then
    score = tonumber(ARGV[base + 2])
    if not finite(score) then return err('episode ' .. j .. ': score ' .. tostring(ARGV[base + 2]) .. ' is not a finite number') end
  end
  episodes[j] = {index = tonumber(raw_index), success = tonumber(raw_success), score = score}
end

local index, version = tonumber(st[1]), tonumber(st[2])
local in_stage, window_successes = tonumber(st[3]), tonumber(st[4])
local stage_successes, score_sum = tonumber(st[5]) or 0, tonumber(st[6]) or 0
local entered_server = tonumber(st[7])

-- The parameters of every stage this batch can reach (one advancement per applied episode at most),
-- read and checked now so that a bad stored config is refused before any write.
local params = {}
for i = index, math.min(n - 1, index + e) do
  local p = redis.call('HMGET', config, i .. ':advance_threshold', i .. ':window', i .. ':min_episodes', i .. ':program')
  local threshold, size, min_episodes = tonumber(p[1]), tonumber(p[2]), tonumber(p[3])
  if not threshold or not size or not min_episodes then
    return redis.error_reply('CR_NO_STAGE the stored config lacks the parameters of stage ' .. i)
  end
  local prog, seconds = false, false
  if p[4] then
    local checked, seconds_or_why = check_program(p[4])
    if not checked then
      return redis.error_reply('CR_STAGE_CONFIG the stored stop condition program of stage ' .. i .. ' ' .. seconds_or_why)
    end
    prog, seconds = checked, seconds_or_why
  end
  params[i] = {threshold = threshold, size = size, min_episodes = min_episodes, program = prog, seconds = seconds}
end

-- The stored state the apply step does arithmetic on, and every count it increments (by at most e), must be
-- numbers that stay exact: checked now, so that a corrupt or hostile state fails before the first write.
if not index or not version or not in_stage or not window_successes then
  return redis.error_reply('CR_CORRUPT ' .. stage .. ' lacks its index, version or counts: run curriculum-redis check')
end
local counted = {{stage, 'duplicate_batches', e}, {stage, 'advancements', e}, {stage, 'recorded_episodes', e},
  {stage, 'stale_episodes', e}}
for _, ep in ipairs(episodes) do
  for _, field in ipairs({':stale', ':episodes', ':successes'}) do counted[#counted + 1] = {history, ep.index .. field, e} end
end
local refused = counts_fit(counted)
if refused then return refused end

local last = tonumber(redis.call('HGET', clients, client_id))
if last and seq <= last then
  redis.call('HINCRBY', stage, 'duplicate_batches', 1)
  return {0, index, version, 0, 0, 0}
end

-- Server time, read once and only if a reachable stage's condition reads `seconds`.
local now_server = nil
for _, reachable in pairs(params) do
  if reachable.seconds and not now_server then now_server = server_time() end
end
local set_entered_server = false
if params[index].seconds and not entered_server then
  entered_server, set_entered_server = now_server, true  -- a state stored without it: the clock starts now
end

-- 2. Apply, episode by episode, in order.
local prm = params[index]
local fill = redis.call('LLEN', window)
local applied, stale, advanced = 0, 0, 0
for _, ep in ipairs(episodes) do
  if ep.index ~= index then
    stale = stale + 1
    redis.call('HINCRBY', history, ep.index .. ':stale', 1)
  else
    applied = applied + 1
    in_stage = in_stage + 1
    stage_successes = stage_successes + ep.success
    score_sum = score_sum + ep.score
    if fill >= prm.size then
      if redis.call('RPOP', window) == '1' then window_successes = window_successes - 1 end
      fill = fill - 1
    end
    redis.call('LPUSH', window, ep.success)
    fill = fill + 1
    window_successes = window_successes + ep.success
    redis.call('HINCRBY', history, index .. ':episodes', 1)
    if ep.success == 1 then redis.call('HINCRBY', history, index .. ':successes', 1) end
    local advance = false
    if index < n - 1 then
      if prm.program then
        local vals = {episodes = in_stage, successes = stage_successes, success = window_successes / fill,
          window = fill, score = score_sum / in_stage, seconds = 0}
        if prm.seconds then vals.seconds = now_server - entered_server end
        advance = run(prm.program, vals)
      else
        advance = in_stage >= prm.min_episodes and fill >= prm.size and window_successes / prm.size >= prm.threshold
      end
    end
    if advance then
      local p = index .. ':'
      redis.call('HSET', history, p .. 'advanced_at', ARGV[4], p .. 'advanced_after_episodes', in_stage,
        p .. 'advanced_with_success_rate', fmt(window_successes / fill))
      index = index + 1
      version = version + 1
      advanced = advanced + 1
      in_stage, window_successes, fill, stage_successes, score_sum = 0, 0, 0, 0, 0
      prm = params[index]
      redis.call('DEL', window)
      redis.call('HSET', history, index .. ':entered_at', ARGV[4])
      redis.call('HSET', stage, 'index', index, 'name', redis.call('HGET', config, index .. ':name'),
        'version', version, 'entered_at', ARGV[4], 'advanced_at', ARGV[4])
      redis.call('HINCRBY', stage, 'advancements', 1)
      if prm.seconds then
        entered_server, set_entered_server = now_server, true
      else
        entered_server, set_entered_server = nil, false
        redis.call('HDEL', stage, 'entered_server_at')
      end
    end
  end
end

redis.call('HSET', clients, client_id, seq)
redis.call('HSET', stage, 'episodes', in_stage, 'window_successes', window_successes, 'successes', stage_successes,
  'score_sum', fmt(score_sum))
if set_entered_server then redis.call('HSET', stage, 'entered_server_at', fmt(entered_server)) end
redis.call('HINCRBY', stage, 'recorded_episodes', e)
if stale > 0 then redis.call('HINCRBY', stage, 'stale_episodes', stale) end
return {1, index, version, applied, stale, advanced}
