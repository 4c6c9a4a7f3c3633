-- include_counts.lua: checks that the counts a script will HINCRBY (or add to) stay counts.
-- KEYS/ARGV: none; not a script. Included where a script holds the line "-- @INCLUDE counts@" (see
-- curriculum_redis/store/scripts.py). Defines counts_fit(increments).
-- Whether every count that the script is about to HINCRBY stays a count: `increments` is a list of
-- {key, field, by}. Returns nil, or a CR_CORRUPT / CR_OVERFLOW error reply to return before the first write
-- (HINCRBY failing half-way would leave a half-applied change: a hostile import can store any value).
local function counts_fit(increments)
  for _, inc in ipairs(increments) do
    local raw = redis.call('HGET', inc[1], inc[2])
    if raw then
      local value = tonumber(raw)
      if not value or value ~= math.floor(value) then
        return redis.error_reply('CR_CORRUPT ' .. inc[1] .. ' field ' .. inc[2] .. ' holds ' .. raw .. ', not a count')
      end
      if math.abs(value + inc[3]) > MAX_TASK_ID then  -- 2^53: past it, counts are inexact
        return redis.error_reply('CR_OVERFLOW ' .. inc[1] .. ' field ' .. inc[2] .. ' would pass 2^53: the ' ..
          'namespace is corrupt (curriculum-redis check)')
      end
    end
  end
  return nil
end
