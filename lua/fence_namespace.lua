-- fence_namespace.lua: hold off task creation and eviction while an admin drops or replaces a namespace.
-- KEYS[1] {cr:<ns>}:meta
-- ARGV[1] the fence's longest life in ms: the drop (which deletes meta) or the import (which rewrites it)
--   takes it down with it; the limit frees the workers if the admin dies first.
-- Without the fence, a drop or replace listed the namespace's keys inside a WATCH on meta, and workers that
-- evicted a few thousand times a second changed meta inside that window 50 times in a row.
-- Returns 1 (fenced), or 0 when the namespace has no meta (nothing is written: no partial namespace).
local ttl = tonumber(ARGV[1])
-- @INCLUDE fence@
if not ttl or ttl < 1 or ttl ~= math.floor(ttl) then
  return redis.error_reply('CR_ARGS fence_namespace.lua: the fence life must be a positive count of ms')
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'fence_until_ms', tostring(now_ms() + ttl))
return 1
