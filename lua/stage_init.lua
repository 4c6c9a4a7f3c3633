-- stage_init.lua: store a stage curriculum's config once and create its state at the first stage.
-- KEYS[1] {cr:<ns>}:stage  KEYS[2] :stage:window  KEYS[3] :stage:config  KEYS[4] :stage:history
-- KEYS[5] :stage:clients  KEYS[6] {cr:<ns>}:meta
-- ARGV[1] config fingerprint  ARGV[2] the stages as JSON  ARGV[3] now (unix seconds)  ARGV[4] N stages
-- ARGV[5] schema_version  ARGV[6] algorithm name  ARGV[7] hypers as JSON (what meta holds for every namespace)
--   then per stage i = 0..N-1: name, advance_threshold (in [0, 1]), window (int >= 1), min_episodes (int >= 0)
--   then, optionally, per stage i = 0..N-1: its stop condition compiled to an RPN program as JSON
--   ([["var","episodes"],["num",500],["op",">="],...], see curriculum_redis/conditions.py), or '' for none.
--   A program is validated (known instructions, finite numbers, no stack underflow, operand types, one
--   boolean left) before anything is written, and stored as "<i>:program".
-- Meta gets schema_version, hypers, algorithm and created_at unless it holds hypers already, so a stage
-- namespace is listed, read and exported like any other.
-- The state gets 'entered_server_at' (Redis TIME) when stage 0's condition reads `seconds`.
-- Returns: {'created'} when this call stored the config (and, if absent, the state at stage 0),
--   {'attached'} when the same config (same fingerprint) is stored already,
--   {'mismatch', stored stages JSON or '', meta's hypers JSON or ''} when another config, or another
--   algorithm, is stored (nothing is written).
-- Errors (before any write): CR_ARGS; CR_SCHEMA when meta holds another schema_version.
local stage, window, config, history, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6]
local function err(msg) return redis.error_reply('CR_ARGS stage_init.lua: ' .. msg) end
local function is_int(s) return type(s) == 'string' and string.match(s, '^%d+$') ~= nil end

-- @INCLUDE stop_condition@
-- @INCLUDE stage_check@

-- 1. Validate everything.
if #KEYS ~= 6 then return err('takes 6 keys, got ' .. #KEYS) end
local fingerprint, stages_json, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
if not fingerprint or fingerprint == '' or not stages_json or stages_json == '' then
  return err('fingerprint and stages JSON must be non-empty')
end
if not now or now ~= now then return err('now must be a number') end
if not is_int(ARGV[4]) or tonumber(ARGV[4]) < 1 then return err('number of stages must be an integer >= 1') end
local n = tonumber(ARGV[4])
local schema, algorithm, hypers = ARGV[5], ARGV[6], ARGV[7]
if not is_int(schema) or not algorithm or algorithm == '' or not hypers or hypers == '' then
  return err('schema_version must be an integer, algorithm and hypers non-empty')
end
local first = 8
if #ARGV ~= first - 1 + 4 * n and #ARGV ~= first - 1 + 5 * n then
  return err('expected ' .. (first - 1 + 4 * n) .. ' or ' .. (first - 1 + 5 * n) .. ' args, got ' .. #ARGV)
end
local with_programs = #ARGV == first - 1 + 5 * n
local first_uses_seconds = false
local fields = {'fingerprint', fingerprint, 'stages', stages_json, 'num_stages', n, 'created_at', ARGV[3]}
for i = 0, n - 1 do
  local base = first + 4 * i
  local name, threshold, size, min_episodes = ARGV[base], tonumber(ARGV[base + 1]), ARGV[base + 2], ARGV[base + 3]
  if name == '' then return err('stage ' .. i .. ' has an empty name') end
  if not threshold or threshold ~= threshold or threshold < 0 or threshold > 1 then
    return err('stage ' .. i .. ' advance_threshold ' .. ARGV[base + 1] .. ' is not a number in [0, 1]')
  end
  if not is_int(size) or tonumber(size) < 1 then return err('stage ' .. i .. ' window must be an integer >= 1') end
  if not is_int(min_episodes) then return err('stage ' .. i .. ' min_episodes must be an integer >= 0') end
  local p = i .. ':'
  fields[#fields + 1] = p .. 'name'; fields[#fields + 1] = name
  fields[#fields + 1] = p .. 'advance_threshold'; fields[#fields + 1] = ARGV[base + 1]
  fields[#fields + 1] = p .. 'window'; fields[#fields + 1] = size
  fields[#fields + 1] = p .. 'min_episodes'; fields[#fields + 1] = min_episodes
  local raw = with_programs and ARGV[first + 4 * n + i] or ''
  if raw ~= '' then
    local prog, seconds_or_why = check_program(raw)
    if not prog then return err('stage ' .. i .. ' stop condition program ' .. seconds_or_why) end
    if i == 0 then first_uses_seconds = seconds_or_why end
    fields[#fields + 1] = p .. 'program'; fields[#fields + 1] = raw
  end
end

-- 2. Compare with what is stored.
local stored_meta = redis.call('HMGET', meta, 'hypers', 'schema_version', 'algorithm')
if stored_meta[1] then
  if stored_meta[2] ~= schema then
    return redis.error_reply('CR_SCHEMA namespace holds schema_version ' .. tostring(stored_meta[2]) ..
      ', this client writes schema_version ' .. schema)
  end
  if stored_meta[3] ~= algorithm then return {'mismatch', '', stored_meta[1]} end
end
local stored = redis.call('HGET', config, 'fingerprint')
if stored and stored ~= fingerprint then
  return {'mismatch', redis.call('HGET', config, 'stages') or '', stored_meta[1] or ''}
end
local status = 'attached'
if not stored then
  redis.call('DEL', config)
  redis.call('HSET', config, unpack(fields))
  status = 'created'
end
if not stored_meta[1] then
  redis.call('HSET', meta, 'schema_version', schema, 'hypers', hypers, 'algorithm', algorithm, 'created_at', ARGV[3])
end

-- 3. The state, at stage 0, unless it exists and is valid for this config.
local index = tonumber(redis.call('HGET', stage, 'index'))
if not index or index >= n then
  redis.call('DEL', window)
  redis.call('HSET', stage, 'index', 0, 'name', ARGV[first], 'version', 0, 'episodes', 0, 'window_successes', 0,
    'recorded_episodes', 0, 'stale_episodes', 0, 'duplicate_batches', 0, 'advancements', 0, 'resets', 0,
    'entered_at', ARGV[3], 'created_at', ARGV[3], 'successes', 0, 'score_sum', 0)
  redis.call('HDEL', stage, 'entered_server_at')
  if first_uses_seconds then
    local _, entered = server_time()
    redis.call('HSET', stage, 'entered_server_at', entered)
  end
  redis.call('HSET', history, '0:entered_at', ARGV[3])
  status = 'created'
end
return {status}
