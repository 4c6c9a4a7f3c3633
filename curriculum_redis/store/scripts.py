"""Finds ``lua/``, builds each script, registers it per client.

A script is named after its file's stem. Each is built from its file: the opening contract comment
(KEYS, ARGV, returns, errors), then the constants header of :func:`lua_header`, then the body, in
which ``-- @INCLUDE name@`` lines are replaced by ``lua/include_<name>.lua`` (Redis scripts cannot share
code at run time). ``algorithm_<name>.lua`` files are not scripts: each is the per-outcome update of one
algorithm, spliced into ``record_outcomes.lua`` by :func:`record_script`.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import redis
from redis.commands.core import Script

import curriculum_redis
from curriculum_redis import conditions
from curriculum_redis.errors import ConfigError, StoreError
from curriculum_redis.store.fastpath import ScriptRunner, load_refused
from curriculum_redis.store.schema import LUA_CONSTANTS

ALGORITHM_PREFIX = "algorithm_"
ALGORITHM_MARKER = "-- @ALGORITHM@\n"
INCLUDE_PREFIX = "include_"
INCLUDE_LINE = re.compile(r"^-- @INCLUDE (\w+)@$", re.MULTILINE)
MARKER_LINE = re.compile(r"-- @[A-Z]+( \w+)?@$")

LuaValue = int | float | str | tuple[str, ...] | frozenset[str]


@functools.cache
def lua_dir() -> Path:
    """``lua/``: package data in a wheel, the project's top-level directory in a checkout or an
    editable install (the package directory's sibling)."""
    packaged = resources.files("curriculum_redis") / "lua"
    if packaged.is_dir():
        return Path(str(packaged))
    source = Path(curriculum_redis.__file__).resolve().parent.parent / "lua"
    if source.is_dir():
        return source
    raise StoreError(f"Lua scripts not found in {packaged} nor {source}: the installation is incomplete")


def header_constants() -> dict[str, LuaValue]:
    """Every value the header defines: the stored layout, and what the stop-condition check accepts."""
    return {
        **LUA_CONSTANTS,
        "COND_VARS": frozenset(conditions.VARIABLES),
        "COND_COMPARE": frozenset(conditions.COMPARISONS),
        "MAX_PROGRAM_TOKENS": conditions.MAX_PROGRAM_TOKENS,
    }


def lua_literal(value: LuaValue) -> str:
    """``value`` as Lua source: exact for numbers (``repr`` round-trips a double), a quoted string, an
    array for a tuple, a set (``{[name] = true}``) for a frozenset."""
    if isinstance(value, bool):
        raise StoreError("a Lua constant cannot be a bool")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise StoreError(f"a Lua constant must be finite, not {value}")
        return repr(value)
    if isinstance(value, str):
        if not value.isprintable() or "\\" in value or "'" in value:
            raise StoreError(f"Lua constant {value!r} needs escaping")
        return f"'{value}'"
    if isinstance(value, tuple):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    return "{" + ", ".join(f"[{lua_literal(v)}] = true" for v in sorted(value)) + "}"


@functools.cache
def lua_header() -> str:
    """The constants every script may use, as Lua locals (one source: :mod:`curriculum_redis.store.schema`)."""
    lines = ["-- Constants from curriculum_redis/store/schema.py (store.scripts.lua_header); never spelled in lua/."]
    lines += [f"local {name} = {lua_literal(value)}" for name, value in header_constants().items()]
    return "\n".join(lines) + "\n"


def with_header(source: str) -> str:
    """``source`` with :func:`lua_header` after its opening comment (the script's contract)."""
    lines = source.splitlines(keepends=True)
    end = 0
    while end < len(lines) and lines[end].startswith("--") and not MARKER_LINE.match(lines[end]):
        end += 1
    return "".join(lines[:end]) + lua_header() + "".join(lines[end:])


def expand_includes(source: str) -> str:
    """Replace each ``-- @INCLUDE name@`` line by ``lua/include_<name>.lua``."""

    def include(match: re.Match[str]) -> str:
        path = lua_dir() / f"{INCLUDE_PREFIX}{match.group(1)}.lua"
        if not path.is_file():
            raise StoreError(f"lua/{path.name} is missing (included by a script)")
        return path.read_text(encoding="utf-8").rstrip("\n")

    return INCLUDE_LINE.sub(include, source)


@functools.cache
def script_sources() -> dict[str, str]:
    """Script name -> source (header put in, includes expanded), for every ``*.lua`` file that is a
    script (not an algorithm's update nor an include)."""
    return {
        path.stem: expand_includes(with_header(path.read_text(encoding="utf-8")))
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
    if fragment is None:  # an algorithm defined outside the package keeps its Lua file beside its module
        from curriculum_redis.algorithms import find_algorithm  # the algorithms import this module

        try:
            fragment = find_algorithm(algorithm).lua_source()
        except ConfigError as exc:
            raise StoreError(f"algorithm {algorithm!r} has no server-side update: {exc}") from exc
    if base.count(ALGORITHM_MARKER) != 1:
        raise StoreError("record_outcomes.lua must hold the algorithm marker exactly once")
    return base.replace(ALGORITHM_MARKER, fragment)


def record_source(algorithm: str) -> str:
    """The record script a store running ``algorithm`` registers (its sha is this source's)."""
    return record_script(script_sources()["record_outcomes"], algorithm)


def every_source() -> dict[str, str]:
    """Every script a store may run, by name: the scripts, and record_outcomes composed with each
    algorithm found (what an admin loads for workers that may not load scripts themselves)."""
    from curriculum_redis.algorithms import pool_algorithms  # the algorithms import this module

    sources = {name: source for name, source in script_sources().items() if name != "record_outcomes"}
    for algorithm in sorted(pool_algorithms()):
        sources[f"record_outcomes:{algorithm}"] = source_of(f"record_outcomes:{algorithm}")
    return sources


def source_of(name: str) -> str:
    """A script's source; ``record_outcomes:<algorithm>`` is record_outcomes.lua with the algorithm's
    update spliced in (each algorithm's composed script has its own sha)."""
    base, _, algorithm = name.partition(":")
    if algorithm:
        return record_script(script_sources()[base], algorithm)
    return script_sources()[name]


class ScriptSet:
    """The scripts of one store in one process, each registered once; made again in a forked child.

    ``Script`` sends EVALSHA, and loads the script again on NOSCRIPT (a restart, a failover, SCRIPT
    FLUSH); a cluster client routes each call to the primary of its keys' slot. Writes to a standalone
    server take the measured faster path of :mod:`~curriculum_redis.store.fastpath` instead.
    """

    def __init__(self, client: redis.Redis | redis.RedisCluster) -> None:
        self._client = client
        self._scripts: dict[str, Script] = {}
        self._runners: dict[str, ScriptRunner] = {}
        self._fast = type(client) is redis.Redis

    def __call__(self, name: str, keys: Sequence[Any], args: Sequence[Any] = (), *, read: bool = False) -> Any:
        """Run script ``name``; ``read`` (a read, or a call off the hot path) always uses ``Script``."""
        if self._fast and not read:
            runner = self._runners.get(name)
            if runner is None:
                assert isinstance(self._client, redis.Redis)
                runner = self._runners[name] = ScriptRunner(self._client.connection_pool, source_of(name))
            return runner(keys, args)
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self._client.register_script(source_of(name))
        try:
            return script(keys=list(keys), args=list(args))
        except redis.exceptions.NoPermissionError as exc:
            raise (load_refused(exc) or exc) from exc

    def close(self) -> None:
        """Close the runners' connections (the store closes its own client)."""
        for runner in self._runners.values():
            runner.close()
        self._runners = {}
