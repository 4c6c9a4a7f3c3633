"""The stored layout Python and Lua share: one source for every constant both sides must agree on.

The Lua scripts never spell these values: :func:`curriculum_redis.store.scripts.lua_header` renders
:data:`LUA_CONSTANTS` as Lua locals and puts them into each script, so changing a value here changes
both sides at once. This module imports nothing from the package, so any module may import it.
"""

from __future__ import annotations

GENERIC_FIELDS: tuple[str, ...] = (
    "task_id",
    "label_hash",
    "completions",
    "score_sum",
    "last_score",
    "consecutive_failures",
    "last_episode",
)
"""Store-owned fields of every record. ``last_episode`` is the global episode clock (the namespace's
``num_completed`` counter) at the task's last recorded outcome."""

MAX_STATE_FIELDS = 8
"""An algorithm's state fields after its headline score; unused ones stay 0."""
RECORD_FIELDS = len(GENERIC_FIELDS) + 1 + MAX_STATE_FIELDS
"""Doubles per pool slot: the generic fields, the headline score, the state fields."""
RECORD_SIZE = 8 * RECORD_FIELDS
"""Bytes per pool slot in the ``:scores`` string."""
SEGMENT_RECORDS = 8192
"""Records per ``:scores`` segment key (1 MiB): no command allocates, copies or reads more than one segment,
whatever the pool's size (see store.keys.NamespaceKeys.scores_segment)."""
SEGMENT_BYTES = SEGMENT_RECORDS * RECORD_SIZE
"""Bytes of a whole ``:scores`` segment (1 MiB)."""
SCORE_OFFSET = 8 * len(GENERIC_FIELDS)
"""Byte offset of the headline score inside a record (what eviction re-checks on the server)."""
DOUBLE_PACK = "<d"
"""``struct`` format of one record field: a little-endian double (Python's ``struct`` and Lua's agree)."""
RECORD_PACK = "<" + "d" * RECORD_FIELDS
"""``struct`` format of one record."""

INT_TASK_FIELDS: tuple[str, ...] = ("label_hash", "slot", "completions", "consecutive_failures", "last_episode")
"""Task-hash fields that hold integers (every other field is a double)."""

LABEL_SCORE_EMA_ALPHA = 0.1
"""Rate of a label's EMA of its tasks' headline scores."""

MAX_TASK_ID = 2**53 - 1
"""The largest task id: every id must be exact as a double (records and Lua numbers are doubles)."""

MAX_STAGES = 1024
"""Stages of a sequential curriculum. Its task ids are ``local_id * MAX_STAGES + stage_index``: the stage an
episode was played in travels with its task id, so ``update_task_performance(task_id, score)`` needs no
per-process bookkeeping."""

HISTORY_EVERY = 1000
"""Episodes of the shared clock between two entries of a namespace's history stream, unless its meta
field ``history_every`` says otherwise (0: no history)."""
HISTORY_MAXLEN = 10_000
"""Entries the history stream keeps (``XADD MAXLEN ~``: trimmed by whole nodes, so a few more)."""
HISTORY_MAX_FIELDS = 7000
"""An entry with more fields than this (about 870 labels) keeps its counters but not its labels."""

LUA_CONSTANTS: dict[str, int | float | str | tuple[str, ...]] = {
    "RECORD": RECORD_SIZE,
    "RECORD_FIELDS": RECORD_FIELDS,
    "PACK": RECORD_PACK,
    "DOUBLE": DOUBLE_PACK,
    "SCORE_OFFSET": SCORE_OFFSET,
    "SEGMENT": SEGMENT_RECORDS,
    "LABEL_SCORE_ALPHA": LABEL_SCORE_EMA_ALPHA,
    "MAX_TASK_ID": MAX_TASK_ID,
    "MAX_STAGES": MAX_STAGES,
    "GENERIC_FIELDS": GENERIC_FIELDS,
    "INT_TASK_FIELDS": INT_TASK_FIELDS,
    "HISTORY_EVERY": HISTORY_EVERY,
    "HISTORY_MAXLEN": HISTORY_MAXLEN,
    "HISTORY_MAX_FIELDS": HISTORY_MAX_FIELDS,
}
"""Lua local name -> value, rendered into every script by ``store.scripts.lua_header``."""
