-- stage_reset.lua: the admin operation "go to stage i": empty window, episode count 0, version bumped.
-- KEYS[1] {cr:<ns>}:stage  KEYS[2] :stage:window  KEYS[3] :stage:config  KEYS[4] :stage:history
-- KEYS[5] :stage:clients
-- ARGV[1] config fingerprint  ARGV[2] stage index (int in [0, num_stages))  ARGV[3] now (unix seconds)
-- Episodes played in another stage and recorded later are stale, as after an advancement. The stage's
-- counts (episodes, successes, score_sum) restart at 0; 'entered_server_at' is set from Redis TIME when
-- the stage's stop condition reads `seconds`.
-- Returns: {stage index, version}
-- Errors (before any write): CR_ARGS, CR_NO_STAGE, CR_STAGE_CONFIG, CR_CORRUPT, CR_OVERFLOW.
local stage, window, config, history = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local function err(msg) return redis.error_reply('CR_ARGS stage_reset.lua: ' .. msg) end

-- @INCLUDE stage_check@
-- @INCLUDE counts@

if #KEYS ~= 5 or #ARGV ~= 3 then return err('takes 5 keys and 3 args') end
local now = tonumber(ARGV[3])
if not now or now ~= now then return err('now must be a number') end
local n, refusal = stored_stages(config, stage, ARGV[1])
if not n then return refusal end
local st = redis.call('HMGET', stage, 'index', 'version')
if not tonumber(st[1]) or not tonumber(st[2]) then
  return redis.error_reply('CR_CORRUPT ' .. stage .. ' lacks its index or version: run curriculum-redis check')
end
local refused = counts_fit({{stage, 'resets', 1}})
if refused then return refused end
if not string.match(ARGV[2], '^%d+$') or tonumber(ARGV[2]) >= n then
  return err('stage index ' .. ARGV[2] .. ' is not an integer in [0, ' .. n .. ')')
end
local index, version = tonumber(ARGV[2]), tonumber(st[2]) + 1

redis.call('HSET', history, st[1] .. ':left_at', ARGV[3], index .. ':entered_at', ARGV[3])
redis.call('DEL', window)
redis.call('HSET', stage, 'index', index, 'name', redis.call('HGET', config, index .. ':name'), 'version', version,
  'episodes', 0, 'window_successes', 0, 'entered_at', ARGV[3])
redis.call('HSET', stage, 'successes', 0, 'score_sum', 0)
local program = redis.call('HGET', config, index .. ':program')
if program and string.find(program, '"seconds"', 1, true) then
  local _, entered = server_time()
  redis.call('HSET', stage, 'entered_server_at', entered)
else
  redis.call('HDEL', stage, 'entered_server_at')
end
redis.call('HINCRBY', stage, 'resets', 1)
return {index, version}
