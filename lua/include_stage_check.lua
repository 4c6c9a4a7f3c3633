-- include_stage_check.lua: what every stage script checks first, and the server clock as stored.
-- KEYS/ARGV: none; not a script. Included into stage_init.lua, stage_record.lua and stage_reset.lua where
-- they hold the line "-- @INCLUDE stage_check@" (see curriculum_redis/store/scripts.py).
-- Defines:
--   stored_stages(config, stage, fingerprint) -> the number of stages, or nil and the error reply to return
--     (CR_NO_STAGE: no config or no state stored; CR_STAGE_CONFIG: the stored config has another fingerprint);
--   server_time() -> Redis TIME as a number of seconds, and as the text stored in 'entered_server_at'.
local function stored_stages(config, stage, fingerprint)
  local cfg = redis.call('HMGET', config, 'fingerprint', 'num_stages')
  if not cfg[1] or redis.call('HEXISTS', stage, 'index') == 0 then
    return nil, redis.error_reply('CR_NO_STAGE no stage curriculum state stored (run stage_init.lua first)')
  end
  if cfg[1] ~= fingerprint then
    return nil, redis.error_reply('CR_STAGE_CONFIG the stored stage config has fingerprint ' .. cfg[1] ..
      ', the client has ' .. tostring(fingerprint))
  end
  return tonumber(cfg[2])
end
local function server_time()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1e6, t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end
