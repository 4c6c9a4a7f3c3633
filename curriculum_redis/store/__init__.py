"""Stores of shared curriculum state, one module per job.

:mod:`~curriculum_redis.store.base` is the protocol every store implements; :mod:`~curriculum_redis.store.memory`
holds the state in this process and :mod:`~curriculum_redis.store.redis` in Redis, helped by
:mod:`~curriculum_redis.store.url`, :mod:`~curriculum_redis.store.connection`, :mod:`~curriculum_redis.store.scripts`,
:mod:`~curriculum_redis.store.replica`, :mod:`~curriculum_redis.store.transfer` and
:mod:`~curriculum_redis.store.stages`. :mod:`~curriculum_redis.store.schema` is the layout Python and Lua share.

Nothing is imported here, so importing one of them (the schema, say) loads no other.
"""
