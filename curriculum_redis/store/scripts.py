"""The Lua scripts, read once from ``lua/`` and registered on each client.

A script is named after its file's stem. In an installed wheel the files are package data
(``curriculum_redis/lua``); in a source checkout or an editable install they are read from the
project's top-level ``lua/`` directory. ``algorithm_<name>.lua`` files are not scripts: each is the
per-outcome update of one algorithm, spliced into ``record_outcomes.lua`` by :func:`record_script`;
``include_<name>.lua`` files hold code that several scripts share (see :func:`expand_includes`).
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path

from curriculum_redis.errors import StoreError

ALGORITHM_PREFIX = "algorithm_"
ALGORITHM_MARKER = "-- @ALGORITHM@\n"
INCLUDE_PREFIX = "include_"
INCLUDE_LINE = re.compile(r"^-- @INCLUDE (\w+)@$", re.MULTILINE)


def lua_dir() -> Path:
    packaged = resources.files("curriculum_redis") / "lua"
    if packaged.is_dir():
        return Path(str(packaged))
    source = Path(__file__).resolve().parents[2] / "lua"
    if source.is_dir():
        return source
    raise StoreError(f"Lua scripts not found in {packaged} nor {source}: the installation is incomplete")


def expand_includes(source: str) -> str:
    """Replace each ``-- @INCLUDE name@`` line by ``lua/include_<name>.lua``: Redis scripts cannot share
    code at run time, so code two scripts need is written once and copied in when they are read."""

    def include(match: re.Match[str]) -> str:
        path = lua_dir() / f"{INCLUDE_PREFIX}{match.group(1)}.lua"
        if not path.is_file():
            raise StoreError(f"lua/{path.name} is missing (included by a script)")
        return path.read_text(encoding="utf-8").rstrip("\n")

    return INCLUDE_LINE.sub(include, source)


@functools.cache
def script_sources() -> dict[str, str]:
    """Script name -> source (includes expanded), for every ``*.lua`` file that is a script (not an
    algorithm's update nor an include)."""
    return {
        path.stem: expand_includes(path.read_text(encoding="utf-8"))
        for path in sorted(lua_dir().glob("*.lua"))
        if not path.stem.startswith((ALGORITHM_PREFIX, INCLUDE_PREFIX))
    }


@functools.cache
def algorithm_sources() -> dict[str, str]:
    """Algorithm name -> the source of its ``lua/algorithm_<name>.lua``."""
    return {
        path.stem[len(ALGORITHM_PREFIX) :]: path.read_text(encoding="utf-8")
        for path in sorted(lua_dir().glob(ALGORITHM_PREFIX + "*.lua"))
    }


def record_script(base: str, algorithm: str) -> str:
    """``record_outcomes.lua`` (``base``) with ``algorithm``'s update spliced in at its marker."""
    fragment = algorithm_sources().get(algorithm)
    if fragment is None:
        raise StoreError(f"no lua/{ALGORITHM_PREFIX}{algorithm}.lua: the algorithm has no server-side update")
    if base.count(ALGORITHM_MARKER) != 1:
        raise StoreError("record_outcomes.lua must hold the algorithm marker exactly once")
    return base.replace(ALGORITHM_MARKER, fragment)


def record_source(algorithm: str) -> str:
    """The record script a store running ``algorithm`` registers (its sha is this source's)."""
    return record_script(script_sources()["record_outcomes"], algorithm)
