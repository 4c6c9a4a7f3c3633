-- record_outcomes.lua: apply one batch of episode outcomes, at most once per (client_id, seq).
-- KEYS[1] {cr:<ns>}:meta  KEYS[2] :counters  KEYS[3] :scores  KEYS[4] :clients
-- KEYS[4 + t]          :task:<id_t>          for t = 1..T (the batch's tasks, in first-seen order)
-- KEYS[4 + T + l]      :label:<label_hash_l> for l = 1..L (labels of those tasks and of samples)
-- KEYS[5 + T + L], KEYS[6 + T + L]  :history:labels, :history (include_history.lua), then the segments
-- ARGV[1] client_id  ARGV[2] seq  ARGV[3] T  ARGV[4] L
--   (KEYS[7 + T + L + k - 1] :scores:<k> for k = 1..ceil(capacity / SEGMENT) - 1, see include_scores.lua)
--   then per task t: task_id, slot (where the sender saw its record; -1 if unknown: the task hash's
--   slot is used), label index l (1-based), count c, then c scores: a normalised score in
--   [0, 1], or 'f' followed by one (a failure to build the task's environment, scored as given)
--   then per label l: label_hash, number of times it was sampled
-- Every outcome of an applied batch counts: in num_completed (the episode clock), num_failures, and its
-- label's completions, score_sum and successes. An outcome whose task is no longer in the pool (another
-- process evicted it while the outcome sat in a buffer) skips only the per-task update (and the label's
-- lp_ema, which follows task scores) and is counted in num_outcomes_for_evicted_tasks; its label's
-- aggregate is updated when the namespace knows the label (its key holds 'label').
-- Returns: {applied (1, or 0 for an already-applied batch), outcomes counted, of which outcomes for tasks
--   no longer in the pool (counted, not an error)}
-- Errors (raised before any write): CR_NO_NAMESPACE, CR_ARGS, CR_SEGMENTS, CR_LABEL (task/label mismatch),
--   CR_ALGORITHM (the namespace runs another algorithm than the one spliced in below), CR_CORRUPT (a task
--   in the pool without its hash: run `curriculum-redis check --repair`), CR_OVERFLOW (a counter this
--   batch would push past 2^53, where HINCRBY could fail after earlier writes).
-- This file is the generic part; store.scripts.record_script splices one lua/algorithm_<name>.lua at the
-- @ALGORITHM@ marker, which defines ALGORITHM, SCORE_FIELD, STATE_FIELDS, HYPERS and update().
-- Record (RECORD_FIELDS doubles): task_id, label_hash, completions, score_sum, last_score, consecutive_failures,
--   last_episode (the global episode clock, counters' num_completed, at the task's last outcome),
--   the algorithm's score, then its state fields (unused ones 0).
-- Floats go to redis.call as Lua numbers: Redis writes them with %.17g (exact), in C, which costs a
-- fraction of string.format in Lua (tostring would keep only 14 digits).
local meta, counters, clients = KEYS[1], KEYS[2], KEYS[4]
local function err(msg) return redis.error_reply('CR_ARGS record_outcomes.lua: ' .. msg) end

-- @ALGORITHM@
-- @INCLUDE scores@

-- 1. Parse and validate everything; nothing is written until the batch is known to be well formed.
local client_id, seq = ARGV[1], tonumber(ARGV[2])
local T, L = tonumber(ARGV[3]), tonumber(ARGV[4])
if not tonumber(client_id) or not seq or seq < 1 then return err('client_id and seq must be numbers') end
if not T or not L or T < 0 or L < 0 then return err('task and label counts must be numbers') end
if #KEYS < 6 + T + L then return err('expected ' .. (6 + T + L) .. ' keys and the segments, got ' .. #KEYS) end

local m = redis.call('HMGET', meta, 'algorithm', 'success_threshold', 'ttl_ms', 'capacity', unpack(HYPERS))
if not m[1] then return redis.error_reply('CR_NO_NAMESPACE no hyperparameters stored') end
local bad_segments = use_segments(3, 7 + T + L, tonumber(m[4]))
if bad_segments then return bad_segments end
if m[1] ~= ALGORITHM then
  return redis.error_reply('CR_ALGORITHM namespace runs ' .. m[1] .. ', this script updates ' .. ALGORITHM)
end
local success_threshold, ttl_ms = tonumber(m[2]), tonumber(m[3])
local hp = {}
for i, name in ipairs(HYPERS) do
  local v = m[4 + i]
  if v then hp[name] = tonumber(v) or (v ~= '' and v or nil) end
end

local tasks, pos = {}, 5
for t = 1, T do
  local id, slot, li, c = ARGV[pos], tonumber(ARGV[pos + 1]), tonumber(ARGV[pos + 2]), tonumber(ARGV[pos + 3])
  if not tonumber(id) then return err('task id ' .. tostring(id) .. ' is not a number') end
  if not slot or slot ~= math.floor(slot) then return err('task ' .. id .. ' has slot ' .. tostring(ARGV[pos + 1])) end
  if not li or li < 1 or li > L then return err('task ' .. id .. ' has label index ' .. tostring(ARGV[pos + 2])) end
  if not c or c < 1 or c ~= math.floor(c) then return err('task ' .. id .. ' has outcome count ' .. tostring(ARGV[pos + 3])) end
  local values, failed = {}, {}
  for j = 1, c do
    local raw = ARGV[pos + 3 + j]
    if raw == nil then return err('batch ends inside the outcomes of task ' .. id) end
    local is_failure = string.sub(raw, 1, 1) == 'f'
    local x = tonumber(is_failure and string.sub(raw, 2) or raw)
    if not x or x ~= x or x < 0 or x > 1 then
      return err('score ' .. raw .. ' of task ' .. id .. ' is not a number in [0, 1]')
    end
    values[j], failed[j] = x, is_failure
  end
  tasks[t] = {id = id, num = tonumber(id), slot = slot, key = KEYS[4 + t], label = li, values = values,
    failed = failed}
  pos = pos + 4 + c
end
local labels = {}
for l = 1, L do
  local h, n = ARGV[pos], tonumber(ARGV[pos + 1])
  if not tonumber(h) or not n or n < 0 then return err('label section entry ' .. l .. ' is malformed') end
  labels[l] = {key = KEYS[4 + T + l], hash = h, sampled = n}
  pos = pos + 2
end
if pos ~= #ARGV + 1 then return err('expected ' .. (pos - 1) .. ' args, got ' .. #ARGV) end

local last = tonumber(redis.call('HGET', clients, client_id))
if last and seq <= last then
  redis.call('HINCRBY', counters, 'num_duplicate_batches', 1)
  return {0, 0, 0}
end

-- A task's state is read from its packed record (doubles, no decimal parsing). The sender's slot is
-- checked against the record's task id; when it is stale or unknown the task hash says where it is.
local function unpacked_record(slot)
  local raw = read_record(slot)
  if not raw then return nil end
  return {struct.unpack(PACK, raw)}
end
for _, task in ipairs(tasks) do
  local r = task.slot >= 0 and unpacked_record(task.slot) or nil
  if not r or r[1] ~= task.num then
    local slot = tonumber(redis.call('HGET', task.key, 'slot'))
    r = slot and slot >= 0 and unpacked_record(slot) or nil
    if slot and not r then
      return redis.error_reply('CR_CORRUPT task ' .. task.id .. ' is in slot ' .. slot .. ', whose scores segment ' ..
        'is missing: run curriculum-redis check')
    end
    task.slot = slot
  end
  if r and r[1] == task.num then
    if r[2] ~= tonumber(labels[task.label].hash) then
      return redis.error_reply('CR_LABEL task ' .. task.id .. ' has label hash ' .. string.format('%.17g', r[2]) ..
        ', the batch says ' .. labels[task.label].hash)
    end
    local s = {slot = task.slot, hash = r[2], n = r[3], score_sum = r[4], last_score = r[5], failures = r[6],
      last_episode = r[7], score = r[8], first_failures = r[6]}
    for i, name in ipairs(STATE_FIELDS) do s[name] = r[8 + i] end
    task.state = s
  end
end
for _, label in ipairs(labels) do
  local v = redis.call('HMGET', label.key, 'completions', 'lp_ema', 'score_sum', 'successes', 'samples', 'label')
  label.n, label.lp_ema, label.score_sum = tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0
  label.successes, label.samples, label.completions = tonumber(v[4]) or 0, tonumber(v[5]) or 0, 0
  label.known = v[6] ~= false
end

-- Structural checks, still before the first write: a pooled task's hash must exist (writing it would
-- re-create it without label_hash and slot), and no counter may overflow when incremented below.
local increment = 1
for _, task in ipairs(tasks) do
  increment = increment + #task.values
  if task.state and redis.call('EXISTS', task.key) == 0 then
    return redis.error_reply('CR_CORRUPT task ' .. task.id .. ' is in the pool but ' .. task.key ..
      ' is missing: run curriculum-redis check --repair')
  end
end
for _, label in ipairs(labels) do increment = increment + label.sampled end
local totals = redis.call('HMGET', counters, 'num_completed', 'num_batches', 'num_failures', 'num_scheduled',
  'num_outcomes_for_evicted_tasks')
for i = 1, #totals do
  if totals[i] and not tonumber(totals[i]) then
    return redis.error_reply('CR_CORRUPT ' .. counters .. ' holds ' .. totals[i] .. ', not a count')
  end
  if (tonumber(totals[i]) or 0) + increment > MAX_TASK_ID + 1 then  -- 2^53: past it, counts are inexact
    return redis.error_reply('CR_OVERFLOW a counter of ' .. counters .. ' would pass 2^53: the namespace is corrupt')
  end
end

-- 2. Apply. update() mirrors the algorithm's Python update operation for operation.
local clock = tonumber(redis.call('HGET', counters, 'num_completed')) or 0
local recorded, evicted, failures = 0, 0, 0
for _, task in ipairs(tasks) do
  local s = task.state
  local label = labels[task.label]
  if not s then
    -- The task left the pool: the episode still happened, in the clock's order like any other.
    for j, x in ipairs(task.values) do
      local success = 0.0
      if x >= success_threshold then success = 1.0 end
      clock = clock + 1
      if task.failed[j] then failures = failures + 1 end
      if label.known then
        label.n = label.n + 1
        label.completions = label.completions + 1
        label.score_sum = label.score_sum + x
        label.successes = label.successes + success
      end
      recorded = recorded + 1
      evicted = evicted + 1
    end
  else
    for j, x in ipairs(task.values) do
      local success = 0.0
      if x >= success_threshold then success = 1.0 end
      clock = clock + 1
      s.score = update(s, x, success, hp, clock)
      s.n = s.n + 1
      s.score_sum = s.score_sum + x
      s.last_score = x
      s.last_episode = clock
      if task.failed[j] then
        s.failures = s.failures + 1
        failures = failures + 1
      else
        s.failures = 0
      end
      local lp = s.score
      if label.n == 0 then label.lp_ema = lp else label.lp_ema = label.lp_ema + LABEL_SCORE_ALPHA * (lp - label.lp_ema) end
      label.n = label.n + 1
      label.completions = label.completions + 1
      label.score_sum = label.score_sum + x  -- in outcome order, as the in-process store sums
      label.successes = label.successes + success
      recorded = recorded + 1
    end
    local fields = {'completions', s.n, 'score_sum', s.score_sum, 'last_score', s.last_score,
      'last_episode', s.last_episode, SCORE_FIELD, s.score}
    local packed = {0, 0, 0, 0, 0, 0, 0, 0}
    for i, name in ipairs(STATE_FIELDS) do
      fields[#fields + 1] = name
      fields[#fields + 1] = s[name]
      packed[i] = s[name]
    end
    redis.call('HSET', task.key, unpack(fields))
    -- consecutive_failures rarely changes: written only when it does.
    if s.failures ~= s.first_failures then redis.call('HSET', task.key, 'consecutive_failures', s.failures) end
    write_record(s.slot, struct.pack(PACK, task.num, s.hash, s.n, s.score_sum,
      s.last_score, s.failures, s.last_episode, s.score, unpack(packed)), ttl_ms, true)
  end
end

redis.call('HSET', clients, client_id, seq)
if ttl_ms then redis.call('PEXPIRE', clients, ttl_ms) end  -- may have just been created
local scheduled = 0
for _, label in ipairs(labels) do
  if label.completions > 0 then
    redis.call('HSET', label.key, 'completions', label.n, 'lp_ema', label.lp_ema, 'score_sum', label.score_sum,
      'successes', label.successes, 'samples', label.samples + label.sampled)
  elseif label.sampled > 0 then
    redis.call('HSET', label.key, 'samples', label.samples + label.sampled)
  end
  scheduled = scheduled + label.sampled
end
redis.call('HINCRBY', counters, 'num_batches', 1)
if recorded > 0 then redis.call('HINCRBY', counters, 'num_completed', recorded) end
if evicted > 0 then redis.call('HINCRBY', counters, 'num_outcomes_for_evicted_tasks', evicted) end
if failures > 0 then redis.call('HINCRBY', counters, 'num_failures', failures) end
if scheduled > 0 then redis.call('HINCRBY', counters, 'num_scheduled', scheduled) end
-- @INCLUDE history@
return {1, recorded, evicted}
