"""Every Python and shell block of the README runs as written, so the README cannot drift from the code.

The blocks of one README section run in order, in one test, as a reader would run them: Python blocks each
in a fresh interpreter, shell blocks with ``bash -euo pipefail``, all from the checkout's root. The only
changes made to a block before it runs, all listed here:

- ``redis://localhost:6379/0`` (Python) becomes the test server's URL, and ``$CURRICULUM_REDIS_URL`` (shell)
  is set to it: the machine's own 6379 server is never touched (a check below refuses any other way in);
- the fixed ports of the cluster, replica and persistence examples (:data:`FIXED_PORTS`) become free ports,
  and ``/tmp/cr/`` becomes the test's scratch directory; servers a block daemonises are stopped by their
  pidfiles afterwards;
- the benchmark commands get ``--smoke --out <scratch>`` (their full runs take minutes; ``tests/test_benchmarks.py``
  checks their figures).

A block is skipped only when a ``<!-- readme-test: skip (reason) -->`` comment precedes it; only the two
install-and-run commands of "Two commands" are (they install packages, or are this test suite).
``json`` blocks are whole configs and must validate; the ``yaml`` block must equal the example file it shows.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cluster import cli_binary, free_cluster_port, port_is_closed, server_binary
from redis_servers import ServerFactory

from curriculum_redis import CurriculumConfig

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
URL_IN_PYTHON = "redis://localhost:6379/0"
SCRATCH_IN_README = "/tmp/cr/"
FIXED_PORTS = ("7000", "7001", "7002", "6390", "6391", "6392")
BENCHMARK_COMMAND = re.compile(r"(python benchmarks/\w+\.py)")
RUNNABLE = ("python", "bash")
KNOWN_LANGUAGES = {"python", "bash", "json", "yaml", "text"}
EXPECTED_SKIPS = [
    "pip install -e '.[embedded,plot]' && curriculum-redis demo",
    "pip install -e '.[dev]' && python -m pytest -q",
]
SECTIONS_ON_A_FRESH_SERVER = {"Security"}
"""Sections whose blocks change server-wide settings (ACL users), which FLUSHALL does not undo."""
SLOW_SECTIONS = {
    "History, watch, plot and loggers",
    "Key schema",
    "On a Redis Cluster",
    "Reading from replicas",
    "Gymnasium",
    "Performance",
    "Curriculum quality",
}


@dataclass(frozen=True)
class Block:
    line: int
    language: str
    code: str
    section: str
    skip: str | None


def parse_readme(text: str) -> list[Block]:
    """Every fenced block with its language, its section (the heading above it) and its skip marker."""
    blocks: list[Block] = []
    lines = text.splitlines()
    section, skip, i = "", None, 0
    while i < len(lines):
        line = lines[i]
        marker = re.fullmatch(r"<!--\s*readme-test:\s*skip\s*\((.+)\)\s*-->", line.strip())
        if marker:
            skip = marker.group(1)
        elif line.startswith("#"):
            section = line.lstrip("#").strip()
        elif line.startswith("```"):
            start, language = i, line[3:].strip()
            i += 1
            while not lines[i].startswith("```"):
                i += 1
            blocks.append(Block(start + 1, language, "\n".join(lines[start + 1 : i]) + "\n", section, skip))
            skip = None
        elif line.strip():
            skip = None  # a marker applies to the block right after it only
        i += 1
    return blocks


BLOCKS = parse_readme(README.read_text(encoding="utf-8"))
RUN_SECTIONS = list(dict.fromkeys(b.section for b in BLOCKS if b.language in RUNNABLE and b.skip is None))


# --------------------------------------------------------------------------- the README's shape


def test_every_block_names_its_language() -> None:
    unnamed = {b.line: b.language for b in BLOCKS if b.language not in KNOWN_LANGUAGES}
    assert not unnamed, f"README blocks (line: language) outside {sorted(KNOWN_LANGUAGES)}: {unnamed}"


def test_only_the_two_install_commands_are_skipped() -> None:
    skipped = [b for b in BLOCKS if b.skip is not None]
    assert [b.code.strip() for b in skipped] == EXPECTED_SKIPS
    assert all(b.skip == "install command" for b in skipped)


def test_no_block_can_reach_the_machines_default_server() -> None:
    for block in BLOCKS:
        if block.language not in RUNNABLE or block.skip is not None:
            continue
        local = re.search(r"(localhost|127\.0\.0\.1):6379", block.code.replace(URL_IN_PYTHON, ""))
        assert local is None, f"README line {block.line} names this machine's port 6379 other than as {URL_IN_PYTHON}"
        for line in block.code.splitlines():
            if line.lstrip().startswith("redis-cli") or "$(redis-cli" in line:
                assert re.search(r"redis-cli (-u \"\$CURRICULUM_REDIS_URL\"|-c -p |-p |--cluster )", line), (
                    f'README line {block.line}: redis-cli without -u "$CURRICULUM_REDIS_URL" or -p: {line!r}'
                )


def test_sections_that_run_blocks_are_the_expected_ones() -> None:
    # A new section with a runnable block is fine; this catches a heading renamed away from SLOW_SECTIONS.
    assert set(RUN_SECTIONS) >= SLOW_SECTIONS
    assert set(RUN_SECTIONS) >= SECTIONS_ON_A_FRESH_SERVER


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.language == "json"], ids=lambda b: f"line{b.line}")
def test_every_json_block_is_a_whole_config(block: Block) -> None:
    config = CurriculumConfig.model_validate_json(block.code)
    assert CurriculumConfig.model_validate_json(config.model_dump_json(exclude_defaults=True)) == config


def test_the_yaml_block_is_the_example_file_it_shows() -> None:
    (block,) = [b for b in BLOCKS if b.language == "yaml"]
    example = ROOT / "examples" / "configs" / "learning_progress.yaml"
    assert block.code == example.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- running the blocks


class Substitutions:
    """The changes a block gets before it runs (see the module docstring), and the servers it leaves."""

    def __init__(self, url: str, scratch: Path) -> None:
        self.url, self.scratch = url, scratch
        taken: set[int] = set()
        self.ports: dict[str, int] = {}
        for fixed in FIXED_PORTS:
            port = free_cluster_port(taken)  # 7000-7002 form a cluster: their bus ports must be free too
            taken |= {port, port + 10_000}
            self.ports[fixed] = port

    def apply(self, code: str, language: str) -> str:
        code = code.replace(URL_IN_PYTHON, self.url) if language == "python" else code
        code = code.replace(SCRATCH_IN_README, f"{self.scratch}/")
        code = BENCHMARK_COMMAND.sub(rf"\1 --smoke --out {self.scratch}/benchmarks", code)
        return re.sub(r"(?<!\d)(" + "|".join(FIXED_PORTS) + r")(?!\d)", lambda m: str(self.ports[m.group(1)]), code)

    def stop_servers(self) -> None:
        """Stop what the blocks daemonised, by the pids in their pidfiles, and wait for the ports to close."""
        for pidfile in self.scratch.rglob("redis.pid"):
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(port_is_closed(p) for p in self.ports.values()):
            time.sleep(0.1)


def block_env(url: str) -> dict[str, str]:
    """The environment of every block: the test server's URL, and on PATH this interpreter's scripts
    (``curriculum-redis``) and the redis-server and redis-cli the test suite uses."""
    server = server_binary()
    cli = cli_binary(server) or shutil.which("redis-cli") or "redis-cli"
    dirs = [str(Path(sys.executable).parent), str(Path(server).parent), str(Path(cli).parent)]
    return {
        **os.environ,
        "CURRICULUM_REDIS_URL": url,
        "PATH": os.pathsep.join([*dict.fromkeys(dirs), os.environ.get("PATH", "")]),
    }


def run_block(block: Block, code: str, env: dict[str, str], scratch: Path) -> None:
    path = scratch / f"readme_line{block.line}.{'py' if block.language == 'python' else 'sh'}"
    path.write_text(code, encoding="utf-8")
    command = [sys.executable, str(path)] if block.language == "python" else ["bash", "-euo", "pipefail", str(path)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (
        f"README block at line {block.line} ({block.section!r}) exited {result.returncode}\n--- code\n{code}"
        f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    )


def _section_param(section: str) -> object:
    marks = [pytest.mark.slow, pytest.mark.timeout(900)] if section in SLOW_SECTIONS else []
    return pytest.param(section, id=section, marks=marks)


@pytest.mark.parametrize("section", [_section_param(s) for s in RUN_SECTIONS])
def test_the_blocks_of_a_section_run_as_written(
    section: str, redis_url: str, fresh_redis_factory: ServerFactory, tmp_path: Path
) -> None:
    url = fresh_redis_factory(persistence="none").url if section in SECTIONS_ON_A_FRESH_SERVER else redis_url
    substitutions = Substitutions(url, tmp_path)
    env = block_env(url)
    try:
        for block in BLOCKS:
            if block.section == section and block.language in RUNNABLE and block.skip is None:
                run_block(block, substitutions.apply(block.code, block.language), env, tmp_path)
    finally:
        substitutions.stop_servers()
