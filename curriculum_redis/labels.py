"""Deterministic label hashes: identical in every process and on every machine (unlike ``hash()``)."""

from __future__ import annotations

import hashlib

from curriculum_redis.errors import ConfigError

LABEL_HASH_BITS = 53
"""53 bits: the hash is exact as a Lua number (a double) and as a JSON number."""


def label_hash(label: str) -> int:
    """The first 53 bits of the label's SHA-256 digest."""
    try:
        data = label.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: no byte string (nor Redis key) can hold it
        raise ConfigError(f"label {label!r} is not valid Unicode text ({exc.reason}): fix the task generator") from None
    digest = hashlib.sha256(data).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - LABEL_HASH_BITS)
