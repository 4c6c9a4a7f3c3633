"""The Lua scripts take every constant they share with Python from one source, ``store.schema``, through
the header ``store.scripts.lua_header`` puts after each script's contract comment."""

from __future__ import annotations

import re
import struct
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest
import redis

from curriculum_redis.store.schema import DOUBLE_PACK, LUA_CONSTANTS, RECORD_FIELDS, RECORD_SIZE, SCORE_OFFSET
from curriculum_redis.store.scripts import (
    ALGORITHM_PREFIX,
    INCLUDE_PREFIX,
    header_constants,
    lua_dir,
    lua_header,
    script_sources,
)

ROOT = Path(__file__).resolve().parents[1]

SPELLED_CONSTANTS = {
    r"(?<![\w.])128(?![\w.])": "RECORD",
    r"\+\s*56(?![\w.])": "SCORE_OFFSET",
    r"(?<![\w.])0\.1(?![\w.])": "LABEL_SCORE_ALPHA",
    r"9007199254740991": "MAX_TASK_ID",
    r"'<d": "PACK or DOUBLE",
    r"(?<![\w.])256(?![\w.])": "MAX_PROGRAM_TOKENS",
    r"\[?'?(>=|!=)'?\]?\s*=\s*true": "COND_COMPARE",
    r"\bepisodes\s*=\s*true": "COND_VARS",
}
"""A pattern that finds a Python constant spelled out in Lua -> the header name to use instead."""


def lua_files() -> list[Path]:
    return sorted(lua_dir().glob("*.lua"))


def test_no_lua_file_repeats_a_python_constant() -> None:
    found = []
    for path in lua_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            found += [
                f"lua/{path.name}:{number}: use {name}: {line.strip()}"
                for pattern, name in SPELLED_CONSTANTS.items()
                if re.search(pattern, line)
            ]
    assert not found, "\n".join(found)


def test_the_schema_is_the_record_layout() -> None:
    assert RECORD_SIZE == 8 * RECORD_FIELDS == struct.calcsize(LUA_CONSTANTS["PACK"])  # type: ignore[arg-type]
    assert SCORE_OFFSET == 8 * 7 and struct.calcsize(DOUBLE_PACK) == 8


def _lua_value(client: redis.Redis, name: str, value: object) -> object:
    """``name`` as the header defines it, read back through EVAL in a form that compares exactly."""
    if isinstance(value, int | float):
        return struct.unpack(DOUBLE_PACK, client.eval(f"{lua_header()}return struct.pack(DOUBLE, {name})", 0))[0]
    if isinstance(value, str):
        return client.eval(f"{lua_header()}return {name}", 0).decode()
    if isinstance(value, tuple):
        return tuple(v.decode() for v in client.eval(f"{lua_header()}return {name}", 0))
    keys = "local out = {} for k, v in pairs(" + name + ") do if v == true then out[#out + 1] = k end end"
    return frozenset(v.decode() for v in client.eval(f"{lua_header()}{keys} return out", 0))


@pytest.mark.parametrize("name", sorted(header_constants()))
def test_header_matches_python(name: str, redis_client: redis.Redis) -> None:
    value = header_constants()[name]
    assert _lua_value(redis_client, name, value) == value


def test_every_script_opens_with_its_contract() -> None:
    """Each file opens with ``-- <file>: what it does`` and its KEYS/ARGV; a script's header follows that
    comment, so the built source still opens with the contract."""
    sources = script_sources()
    for path in lua_files():
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        opening = "".join(line for line in lines[: next(i for i, s in enumerate(lines) if not s.startswith("--"))])
        assert opening.startswith(f"-- {path.name}: "), f"lua/{path.name} does not open with its name and job"
        if path.stem.startswith((ALGORITHM_PREFIX, INCLUDE_PREFIX)):
            assert "-- KEYS/ARGV: none" in opening, f"lua/{path.name} must say it takes no KEYS/ARGV"
            continue
        assert "-- KEYS" in opening and "-- ARGV" in opening, f"lua/{path.name} states no KEYS/ARGV contract"
        assert sources[path.stem].startswith(opening + lua_header()), f"lua/{path.name}: the header is misplaced"


def test_new_task_block_is_written_once() -> None:
    for name in ("create_tasks", "evict_and_replace"):
        text = (lua_dir() / f"{name}.lua").read_text(encoding="utf-8")
        assert "-- @INCLUDE new_task@" in text and "HSETNX" not in text
        assert script_sources()[name].count("local function new_task(") == 1


@pytest.mark.slow
def test_editable_install_finds_lua(tmp_path: Path) -> None:
    """``pip install -e`` of a copy of the project, in a venv of its own: the loader finds the copy's
    top-level ``lua/`` (not package data, which an editable install does not have in the package)."""
    pytest.importorskip("editables", reason="hatchling's editable wheels need the editables package")
    project = tmp_path / "project"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True)
    for name in files.stdout.splitlines():
        if name.startswith(("curriculum_redis/", "lua/")) or name in ("pyproject.toml", "README.md"):
            source = ROOT / name
            if source.is_file():
                (project / name).parent.mkdir(parents=True, exist_ok=True)
                (project / name).write_bytes(source.read_bytes())
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True
    ).stdout.strip()
    # The dependencies (and hatchling, the build backend) come from this interpreter's environment.
    Path(site, "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-e", str(project)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    check = subprocess.run(
        [python, "-c", "from curriculum_redis.store.scripts import lua_dir, script_sources as s; "
         "print(lua_dir()); print(len(s()))"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    where, count = check.stdout.split()
    assert Path(where) == project / "lua" and int(count) == len(script_sources())
