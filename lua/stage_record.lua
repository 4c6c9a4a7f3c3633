-- stage_record.lua: record episodes of a stage curriculum and advance the stage, atomically, at most
-- once per (client_id, seq).
-- KEYS[1] {cr:<ns>}:stage  KEYS[2] :stage:window  KEYS[3] :stage:config  KEYS[4] :stage:history
-- KEYS[5] :stage:clients
-- ARGV[1] config fingerprint  ARGV[2] client_id  ARGV[3] seq (int >= 1)  ARGV[4] now (unix seconds)
-- ARGV[5] E (episodes, int >= 1), then per episode: the index of the stage it was played in
--   (int in [0, num_stages)), success ('1' or '0')
-- An episode of the current stage updates the stage's window (its last W outcomes, newest first) and
-- may advance the stage: when episodes >= min_episodes, the window is full and its success rate is
-- >= advance_threshold, and this is not the last stage. Advancing empties the window, resets the
-- episode count and bumps the version. An episode of any other stage is stale: counted, not applied.
-- Returns: {applied (1, or 0 for an already-applied batch), current stage index, version,
--   episodes applied, stale episodes, advancements made by this call}
-- Errors (raised before any write): CR_ARGS, CR_NO_STAGE (no state: init first),
--   CR_STAGE_CONFIG (the stored config has another fingerprint).
local stage, window, config, history, clients = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local function fmt(x) return string.format('%.17g', x) end
local function err(msg) return redis.error_reply('CR_ARGS stage_record.lua: ' .. msg) end
local function is_int(s) return type(s) == 'string' and string.match(s, '^%d+$') ~= nil end

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
if #ARGV ~= 5 + 2 * e then return err('expected ' .. (5 + 2 * e) .. ' args for ' .. e .. ' episodes, got ' .. #ARGV) end

local cfg = redis.call('HMGET', config, 'fingerprint', 'num_stages')
local st = redis.call('HMGET', stage, 'index', 'version', 'episodes', 'window_successes')
if not cfg[1] or not st[1] then
  return redis.error_reply('CR_NO_STAGE no stage curriculum state stored (run stage_init.lua first)')
end
if cfg[1] ~= fingerprint then
  return redis.error_reply('CR_STAGE_CONFIG the stored stage config has fingerprint ' .. cfg[1] ..
    ', the client has ' .. tostring(fingerprint))
end
local n = tonumber(cfg[2])
local episodes = {}
for j = 1, e do
  local raw_index, raw_success = ARGV[4 + 2 * j], ARGV[5 + 2 * j]
  if not is_int(raw_index) or tonumber(raw_index) >= n then
    return err('episode ' .. j .. ': stage index ' .. tostring(raw_index) .. ' is not an integer in [0, ' .. n .. ')')
  end
  if raw_success ~= '1' and raw_success ~= '0' then
    return err('episode ' .. j .. ': success must be 1 or 0, got ' .. tostring(raw_success))
  end
  episodes[j] = {index = tonumber(raw_index), success = tonumber(raw_success)}
end

local index, version = tonumber(st[1]), tonumber(st[2])
local in_stage, window_successes = tonumber(st[3]), tonumber(st[4])
local function params(i)
  local p = redis.call('HMGET', config, i .. ':advance_threshold', i .. ':window', i .. ':min_episodes')
  return tonumber(p[1]), tonumber(p[2]), tonumber(p[3])
end
local threshold, size, min_episodes = params(index)
if not threshold or not size or not min_episodes then
  return redis.error_reply('CR_NO_STAGE the stored config lacks the parameters of stage ' .. index)
end

local last = tonumber(redis.call('HGET', clients, client_id))
if last and seq <= last then
  redis.call('HINCRBY', stage, 'duplicate_batches', 1)
  return {0, index, version, 0, 0, 0}
end

-- 2. Apply, episode by episode, in order.
local fill = redis.call('LLEN', window)
local applied, stale, advanced = 0, 0, 0
for _, ep in ipairs(episodes) do
  if ep.index ~= index then
    stale = stale + 1
    redis.call('HINCRBY', history, ep.index .. ':stale', 1)
  else
    applied = applied + 1
    in_stage = in_stage + 1
    if fill >= size then
      if redis.call('RPOP', window) == '1' then window_successes = window_successes - 1 end
      fill = fill - 1
    end
    redis.call('LPUSH', window, ep.success)
    fill = fill + 1
    window_successes = window_successes + ep.success
    redis.call('HINCRBY', history, index .. ':episodes', 1)
    if ep.success == 1 then redis.call('HINCRBY', history, index .. ':successes', 1) end
    if index < n - 1 and in_stage >= min_episodes and fill >= size and window_successes / size >= threshold then
      local p = index .. ':'
      redis.call('HSET', history, p .. 'advanced_at', ARGV[4], p .. 'advanced_after_episodes', in_stage,
        p .. 'advanced_with_success_rate', fmt(window_successes / size))
      index = index + 1
      version = version + 1
      advanced = advanced + 1
      in_stage, window_successes, fill = 0, 0, 0
      redis.call('DEL', window)
      redis.call('HSET', history, index .. ':entered_at', ARGV[4])
      redis.call('HSET', stage, 'index', index, 'name', redis.call('HGET', config, index .. ':name'),
        'version', version, 'entered_at', ARGV[4], 'advanced_at', ARGV[4])
      redis.call('HINCRBY', stage, 'advancements', 1)
      threshold, size, min_episodes = params(index)
    end
  end
end

redis.call('HSET', clients, client_id, seq)
redis.call('HSET', stage, 'episodes', in_stage, 'window_successes', window_successes)
redis.call('HINCRBY', stage, 'recorded_episodes', e)
if stale > 0 then redis.call('HINCRBY', stage, 'stale_episodes', stale) end
return {1, index, version, applied, stale, advanced}
