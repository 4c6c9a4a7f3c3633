-- include_history.lua: the run's history, kept in Redis (spliced into record_outcomes.lua).
-- KEYS/ARGV: none of its own; record_outcomes.lua passes these two after its labels' keys:
-- KEYS[5 + T + L] {cr:<ns>}:history:labels  hash: '<label_hash>:n|s|w|x' -> the label's completions,
--   samples, successes, score sum (a mirror of the label keys, so one read gives every label's totals)
-- KEYS[6 + T + L] {cr:<ns>}:history         capped stream: one entry each time the episode clock
--   (counters' num_completed) crosses a multiple of meta's history_every (HISTORY_EVERY when unset; 0
--   turns it off). The batch that crosses writes it, once, whoever sent it; wall time plays no part.
-- Entry fields: episode (the clock after the batch), pool (pool_size), every counter, then the mirror.
-- Uses from record_outcomes.lua: meta, counters, labels (with .hash .n .samples .sampled .successes
--   .score_sum .completions), recorded, clock, ttl_ms, T, L.
do
  local history_labels, history = KEYS[5 + T + L], KEYS[6 + T + L]
  local mirror = {}
  for _, label in ipairs(labels) do
    if label.completions > 0 or label.sampled > 0 then
      local h = label.hash
      mirror[#mirror + 1] = h .. ':n'
      mirror[#mirror + 1] = label.n
      mirror[#mirror + 1] = h .. ':s'
      mirror[#mirror + 1] = label.samples + label.sampled
      mirror[#mirror + 1] = h .. ':w'
      mirror[#mirror + 1] = label.successes
      mirror[#mirror + 1] = h .. ':x'
      mirror[#mirror + 1] = label.score_sum
    end
  end
  if #mirror > 0 then
    redis.call('HSET', history_labels, unpack(mirror))
    if ttl_ms then redis.call('PEXPIRE', history_labels, ttl_ms) end
  end
  local every = tonumber(redis.call('HGET', meta, 'history_every')) or HISTORY_EVERY
  if every > 0 and recorded > 0 and math.floor((clock - recorded) / every) < math.floor(clock / every) then
    local entry = {'XADD', history, 'MAXLEN', '~', HISTORY_MAXLEN, '*', 'episode', clock,
      'pool', redis.call('HGET', meta, 'pool_size') or 0}
    for _, v in ipairs(redis.call('HGETALL', counters)) do entry[#entry + 1] = v end
    local flat = redis.call('HGETALL', history_labels)
    if #entry + #flat <= HISTORY_MAX_FIELDS then  -- Lua's unpack has a stack limit
      for _, v in ipairs(flat) do entry[#entry + 1] = v end
    end
    redis.call(unpack(entry))
    if ttl_ms then redis.call('PEXPIRE', history, ttl_ms) end
  end
end
