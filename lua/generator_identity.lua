-- generator_identity.lua: record the fingerprint of a pool namespace's task generator once; compare later ones.
-- KEYS[1] {cr:<ns>}:meta
-- ARGV[1] the fingerprint of the attaching process's task generator (hex)
-- Returns: the fingerprint stored (the given one when this call stored it).
-- Returns the given fingerprint, writing nothing, when meta does not exist. Errors: CR_ARGS on bad input.
-- Two generators in one namespace make the same task ids mean different tasks (and different label
-- hashes, which record_outcomes refuses), so the first one's fingerprint is kept and others are refused.
if #KEYS ~= 1 or #ARGV ~= 1 or #ARGV[1] == 0 or #ARGV[1] > 64 then
  return redis.error_reply('CR_ARGS generator_identity.lua takes 1 key and 1 non-empty fingerprint')
end
-- Dropped since attaching: nothing to compare with, and a lone field must not make a partial meta.
if redis.call('EXISTS', KEYS[1]) == 0 then return ARGV[1] end
redis.call('HSETNX', KEYS[1], 'generator', ARGV[1])
return redis.call('HGET', KEYS[1], 'generator')
