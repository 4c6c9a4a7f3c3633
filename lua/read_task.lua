-- read_task.lua: one task's fields and its label string.
-- KEYS[1] {cr:<ns>}:task:<id>  KEYS[2] {cr:<ns>}:labels
-- ARGV: none
-- Returns: {} when the task is not in the pool, else a flat field/value list (HGETALL order)
--   followed by 'label', <label string>.
if #KEYS ~= 2 then return redis.error_reply('CR_ARGS read_task.lua takes 2 keys') end
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return {} end
local h = redis.call('HGET', KEYS[1], 'label_hash')
fields[#fields + 1] = 'label'
fields[#fields + 1] = redis.call('HGET', KEYS[2], h) or ''
return fields
