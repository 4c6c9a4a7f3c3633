"""The key schema of one namespace. Every key carries the hash tag ``{cr:<ns>}``, so all of a
namespace's keys live in one Redis Cluster slot and every script can name them all in KEYS."""

from __future__ import annotations

from dataclasses import dataclass

from curriculum_redis.errors import ConfigError
from curriculum_redis.store.schema import SEGMENT_RECORDS

NAMESPACE_MAX_LENGTH = 128
NAMESPACE_FORBIDDEN = frozenset("{}:*?[]\\")
"""Characters a namespace may not hold: braces end the hash tag (``{cr:a}:zzz}`` would start like ``a``'s keys),
':' separates key parts, the rest are SCAN pattern syntax."""


def validate_namespace(value: object) -> str:
    """The one check of a namespace name, made by every entry point (config, stores, admin, CLI, imports)."""
    if not isinstance(value, str):
        raise ConfigError(f"a namespace is a string, got {type(value).__name__}")
    bad = set(value) & NAMESPACE_FORBIDDEN
    if not 1 <= len(value) <= NAMESPACE_MAX_LENGTH or bad or not value.isprintable() or " " in value:
        what = f"contains {''.join(sorted(bad))!r}" if bad else "is empty, too long, or holds blanks or control codes"
        raise ConfigError(
            f"namespace {value!r} {what}; use 1 to {NAMESPACE_MAX_LENGTH} letters, digits, '-', '_', '.'"
        )
    return value


@dataclass(frozen=True)
class NamespaceKeys:
    namespace: str

    def __post_init__(self) -> None:
        validate_namespace(self.namespace)

    def owns(self, key: str) -> bool:
        """Whether ``key`` is one of this namespace's keys: its prefix, then a suffix without braces (none of
        ours has one), so a key of a foreign (invalid) name such as ``{cr:a}:zzz}:meta`` is never ``a``'s."""
        head = self.prefix + ":"
        return key.startswith(head) and "{" not in key[len(head) :] and "}" not in key[len(head) :]

    @property
    def prefix(self) -> str:
        return "{cr:" + self.namespace + "}"

    @property
    def meta(self) -> str:
        """Hash: schema_version, hypers (JSON), the scoring fields scripts read, capacity, pool_size,
        pool_version (bumped whenever a task enters or leaves the pool)."""
        return f"{self.prefix}:meta"

    @property
    def counters(self) -> str:
        """Hash: cumulative counters (num_created, num_evicted, num_completed, ...)."""
        return f"{self.prefix}:counters"

    @property
    def scores(self) -> str:
        """String: one packed 128-byte record per slot (see algorithms.base) for the first
        ``SEGMENT_RECORDS`` slots; the pool is the set of non-empty slots, so no other index of active tasks
        is kept. Larger pools continue in :meth:`scores_segment` keys."""
        return f"{self.prefix}:scores"

    def scores_segment(self, k: int) -> str:
        """String: slots ``[k * SEGMENT_RECORDS, (k + 1) * SEGMENT_RECORDS)``; segment 0 is :attr:`scores`.
        Segments, not one string, so that no command allocates or copies more than 1 MiB: one SETRANGE
        sizing a 1,000,000-slot string took 57 ms, during which Redis serves no one."""
        return self.scores if k == 0 else f"{self.prefix}:scores:{k}"

    def scores_segments(self, capacity: int) -> list[str]:
        """Every segment a pool of ``capacity`` slots may use, segment 0 first."""
        return [self.scores_segment(k) for k in range(max(1, -(-capacity // SEGMENT_RECORDS)))]

    @property
    def labels(self) -> str:
        """Hash: label_hash -> label string, for every label ever created (never pruned)."""
        return f"{self.prefix}:labels"

    @property
    def clients(self) -> str:
        """Hash: client_id -> last applied batch seq (the de-duplication of re-sent batches)."""
        return f"{self.prefix}:clients"

    def task(self, task_id: int) -> str:
        """Hash: one task's counts and EMAs, fields named as in state.TaskRecord."""
        return f"{self.prefix}:task:{task_id}"

    def label(self, label_hash: int) -> str:
        """Hash: aggregates of every task that carried the label (state.LabelStats)."""
        return f"{self.prefix}:label:{label_hash}"

    @property
    def history(self) -> str:
        """Stream: the run's history, one entry per ``history_every`` episodes (see lua/include_history.lua)."""
        return f"{self.prefix}:history"

    @property
    def history_labels(self) -> str:
        """Hash: ``<label_hash>:n|s|w|x`` -> each label's completions, samples, successes, score sum."""
        return f"{self.prefix}:history:labels"

    @property
    def fixed(self) -> list[str]:
        """The task pool's keys whose names don't depend on a task or label."""
        return [self.meta, self.counters, self.scores, self.labels, self.clients]

    @property
    def stage(self) -> str:
        """Hash: a sequential curriculum's position and counts in its current stage (see store.stages)."""
        return f"{self.prefix}:stage"

    @property
    def stage_window(self) -> str:
        """List: the current stage's last outcomes, newest first ("1" / "0")."""
        return f"{self.prefix}:stage:window"

    @property
    def stage_config(self) -> str:
        """Hash: the stages as stored once (fingerprint, JSON, per-stage thresholds and programs)."""
        return f"{self.prefix}:stage:config"

    @property
    def stage_history(self) -> str:
        """Hash: per-stage counts and times, ``<i>:<name>``."""
        return f"{self.prefix}:stage:history"

    @property
    def stage_clients(self) -> str:
        """Hash: client_id -> last applied batch seq of the stage scripts."""
        return f"{self.prefix}:stage:clients"

    @property
    def stage_all(self) -> list[str]:
        """The KEYS of every stage script, in their order."""
        return [self.stage, self.stage_window, self.stage_config, self.stage_history, self.stage_clients]

    @property
    def _escaped(self) -> str:
        return "".join("\\" + c if c in "*?[]\\" else c for c in self.namespace)

    @property
    def pattern(self) -> str:
        """SCAN pattern matching every key of the namespace (its stage keys too)."""
        return "{cr:" + self._escaped + "}:*"

    @property
    def segment_pattern(self) -> str:
        """SCAN pattern of the ``:scores`` segments after the first."""
        return "{cr:" + self._escaped + "}:scores:*"

    @property
    def task_pattern(self) -> str:
        return "{cr:" + self._escaped + "}:task:*"

    @property
    def label_pattern(self) -> str:
        return "{cr:" + self._escaped + "}:label:*"
