-- include_scores.lua: where a pool slot's packed record lives.
-- KEYS/ARGV: none; not a script. Included where a script holds the line "-- @INCLUDE scores@" (see
-- curriculum_redis/store/scripts.py). Defines use_segments(first, extra, capacity), record_at(slot),
-- read_record(slot) and write_record(slot, bytes, ttl_ms, existing).
-- Slot s is in segment k = floor(s / SEGMENT), at byte (s - k SEGMENT) RECORD. Segment 0 is :scores
-- (KEYS[first]); segment k > 0 is :scores:<k>, passed as KEYS[extra + k - 1]. A segment holds
-- min(SEGMENT, capacity - k SEGMENT) records (1 MiB at most), so no command allocates or copies more than
-- that at any pool size (see store.keys.NamespaceKeys.scores_segment).

local SEGMENTS, SEGMENT_CAPACITY = {}, 0

-- Binds the segments the caller passed; an error reply (to return before any write) when a segment the
-- namespace's capacity needs is missing from KEYS or misnamed, or when :scores itself is gone.
local function use_segments(first, extra, capacity)
  if not capacity or capacity < 1 or capacity ~= math.floor(capacity) then
    return redis.error_reply('CR_CORRUPT meta capacity ' .. tostring(capacity) .. ' is not a positive count')
  end
  SEGMENT_CAPACITY = capacity
  SEGMENTS[0] = KEYS[first]
  local needed = math.ceil(capacity / SEGMENT) - 1
  if #KEYS - extra + 1 < needed then
    return redis.error_reply('CR_SEGMENTS a pool of capacity ' .. capacity .. ' needs ' .. needed ..
      ' more scores segment keys, got ' .. (#KEYS - extra + 1))
  end
  for k = 1, needed do
    local key = KEYS[extra + k - 1]
    if key ~= KEYS[first] .. ':' .. k then
      return redis.error_reply('CR_SEGMENTS key ' .. tostring(key) .. ' is not segment ' .. k .. ' of ' .. KEYS[first])
    end
    SEGMENTS[k] = key
  end
  if redis.call('EXISTS', KEYS[first]) == 0 then
    return redis.error_reply('CR_CORRUPT ' .. KEYS[first] .. ' is missing: run curriculum-redis check, or drop the namespace')
  end
  return nil
end

-- The segment key and byte offset of `slot`'s record.
local function record_at(slot)
  local k = math.floor(slot / SEGMENT)
  return SEGMENTS[k], (slot - k * SEGMENT) * RECORD
end

-- `slot`'s record as bytes, or nil when its segment does not exist (or the slot is past capacity).
local function read_record(slot)
  local key, offset = record_at(slot)
  if not key then return nil end
  local raw = redis.call('GETRANGE', key, offset, offset + RECORD - 1)
  if #raw < RECORD then return nil end
  return raw
end

-- Writes `slot`'s record; a segment's first record allocates it whole (it never grows afterwards), and
-- a new segment expires after ttl_ms when that is set (see RedisStore.touch). `existing`: the caller read
-- this slot's record in this call, so its segment exists (saves an EXISTS a task on the hot path).
local function write_record(slot, bytes, ttl_ms, existing)
  local key, offset = record_at(slot)
  if not existing and redis.call('EXISTS', key) == 0 then
    local k = math.floor(slot / SEGMENT)
    redis.call('SETRANGE', key, math.min(SEGMENT, SEGMENT_CAPACITY - k * SEGMENT) * RECORD - 1, '\0')
    if ttl_ms then redis.call('PEXPIRE', key, ttl_ms) end
  end
  redis.call('SETRANGE', key, offset, bytes)
end
