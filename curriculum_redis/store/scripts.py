"""The Lua scripts, read once from ``lua/`` and registered on each client.

A script is named after its file's stem. In an installed wheel the files are package data
(``curriculum_redis/lua``); in a source checkout or an editable install they are read from the
project's top-level ``lua/`` directory.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from curriculum_redis.errors import StoreError


def lua_dir() -> Path:
    packaged = resources.files("curriculum_redis") / "lua"
    if packaged.is_dir():
        return Path(str(packaged))
    source = Path(__file__).resolve().parents[2] / "lua"
    if source.is_dir():
        return source
    raise StoreError(f"Lua scripts not found in {packaged} nor {source}: the installation is incomplete")


@functools.cache
def script_sources() -> dict[str, str]:
    """Script name -> source, for every ``*.lua`` file."""
    return {path.stem: path.read_text(encoding="utf-8") for path in sorted(lua_dir().glob("*.lua"))}
