"""Reading a large pool's ``:scores`` segments without blocking a shared server.

Redis runs one command at a time: one GET of a 100,000-task pool (12 MiB) held every other client for up to
a third of a second on a loaded machine. A snapshot is therefore read as its first 1,024 records
(atomically with the pool version and the clock), then one bounded ``GETRANGE`` per further chunk (at most
one ``:scores`` segment, 1 MiB), each its own command, so other clients run in between. Records never
straddle chunks, and each slot's record is written whole by one script, so a snapshot read in chunks holds
every slot whole; slots of different chunks may be a few milliseconds apart, which a sampler (whose
snapshot is already behind the live pool) does not notice.
"""

from __future__ import annotations

from typing import Any

from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.schema import RECORD_SIZE, SEGMENT_BYTES

SNAPSHOT_FIRST_BYTES = 1024 * RECORD_SIZE
"""What the script returns (128 KiB): a Lua script copies a string twice, and 1 MiB cost 3-9 ms there, where
128 KiB costs 0.2-0.3 ms (median and worst of 5 reads of a 100,000-task pool; README, Large pools)."""

SNAPSHOT_CHUNK_BYTES = SEGMENT_BYTES
"""Each further ``GETRANGE`` (1 MiB, one segment): 0.1 ms median, under 1 ms worst, where one GET of 12 MiB
took up to 12 ms."""


def read_pool(client: Any, keys: NamespaceKeys, head: bytes, total: int, chunk: int = SNAPSHOT_CHUNK_BYTES) -> bytes:
    """The pool's records ``[0, total)`` bytes, laid end to end over the segments, given the ``head`` that
    ``read_snapshot.lua`` returned: the rest of ``:scores``, then each further segment, one bounded command
    each. Shorter when a segment is shorter than it should be (a namespace dropped under the reader)."""
    start = head[:total]
    first = min(total, SEGMENT_BYTES)
    rest = read_rest(client, keys.scores, len(start), first, chunk)
    parts = [start, rest]
    if len(start) + len(rest) < first:
        return b"".join(parts)
    for k in range(1, -(-total // SEGMENT_BYTES)):
        want = min(SEGMENT_BYTES, total - k * SEGMENT_BYTES)
        part = read_rest(client, keys.scores_segment(k), 0, want, chunk)
        parts.append(part)
        if len(part) < want:
            break
    return b"".join(parts)


def read_rest(client: Any, key: str, start: int, total: int, chunk: int = SNAPSHOT_CHUNK_BYTES) -> bytes:
    """Bytes ``[start, total)`` of the string at ``key``, one ``GETRANGE`` of at most ``chunk`` bytes per
    round trip (not pipelined: Redis would run a pipeline's commands back to back). Shorter when the string
    shrank meanwhile (a namespace dropped under the reader)."""
    size = chunk
    parts: list[bytes] = []
    offset = start
    while offset < total:
        part = bytes(client.getrange(key, offset, min(offset + size, total) - 1))
        parts.append(part)
        if len(part) < min(size, total - offset):
            break
        offset += len(part)
    return b"".join(parts)
