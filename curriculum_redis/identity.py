"""The task generator's identity: a fingerprint of its config, stored with a pool namespace on first attach.

Processes sharing a namespace with different generators would give one task id two meanings, and every
batch of the later one would be refused (its label hashes differ from the stored ones); comparing the
fingerprint when attaching refuses the second generator up front, with an error naming it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from curriculum_redis.errors import GeneratorMismatchError
from curriculum_redis.store.base import CurriculumStore
from curriculum_redis.store.connection import map_errors, text

__all__ = ["check_generator", "generator_fingerprint", "probe_generator"]


def probe_generator(generator: Any) -> None:
    """Make one task before anything is written: a generator whose labels cannot be stored (e.g. a lone
    surrogate) is refused with a ConfigError before attaching creates the namespace."""
    generator.get_task(1)


def generator_fingerprint(generator: Any) -> str:
    """A short hash of the generator's class and its config (its JSON form): equal generators, equal prints."""
    kind = f"{type(generator).__module__}.{type(generator).__qualname__}"
    body = generator.model_dump_json() if hasattr(generator, "model_dump_json") else repr(generator)
    return hashlib.sha256(f"{kind}\n{body}".encode()).hexdigest()[:24]


def check_generator(store: CurriculumStore, generator: Any) -> None:
    """Store the generator's fingerprint in an attached namespace that has none; refuse another one."""
    given = generator_fingerprint(generator)
    stored = _store_fingerprint(store, given)
    if stored != given:
        raise GeneratorMismatchError(store.namespace, stored, given, generator)


def _store_fingerprint(store: Any, given: str) -> str:
    scripts = getattr(store, "scripts", None)
    if scripts is None:  # an in-process store: one attribute on the store object plays the meta field
        stored: str = store.__dict__.setdefault("_generator_fingerprint", given)
        return stored
    with map_errors(lambda: store.where):
        reply = scripts("generator_identity", [store.keys.meta], [given])
    return text(reply)
