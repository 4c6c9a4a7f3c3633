"""Deterministic label hashes: identical in every process and on every machine (unlike ``hash()``)."""

from __future__ import annotations

import hashlib

LABEL_HASH_BITS = 53
"""53 bits: the hash is exact as a Lua number (a double) and as a JSON number."""


def label_hash(label: str) -> int:
    """The first 53 bits of the label's SHA-256 digest."""
    digest = hashlib.sha256(label.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - LABEL_HASH_BITS)
