-- include_fence.lua: the fence an admin puts up while it drops or replaces a namespace (fence_namespace.lua).
-- KEYS/ARGV: none; not a script. Included where a script holds the line "-- @INCLUDE fence@" (see
-- curriculum_redis/store/scripts.py). Defines now_ms() and fence_refusal(until_ms).
-- A script that would create or evict tasks asks first: with meta's fence_until_ms (server time, ms) still
-- ahead it returns a CR_FENCED error reply before any write; the client leaves an eviction to its next
-- refresh and waits to create tasks. TIME is read only while a fence field exists, so an unfenced namespace
-- runs no non-deterministic command.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function fence_refusal(until_ms)
  if not until_ms then return nil end
  if now_ms() < (tonumber(until_ms) or 0) then
    return redis.error_reply('CR_FENCED an admin is dropping or replacing this namespace; wait and retry')
  end
  return nil
end
