"""``curriculum-redis demo`` as a real process: SIGTERM and SIGHUP stop its redis-server, its workers and
the multiprocessing resource tracker as Ctrl-C does, and piped output still shows progress lines."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.redis

SERVER_LINE = re.compile(r"^started (\S+) (\S+) \((.*), pid (\d+)\) on 127\.0\.0\.1:(\d+)$")
WORKERS_LINE = re.compile(r"^started (\d+) worker processes \(pids ([\d, ]+)\)$")
PROGRESS_LINE = re.compile(
    r"^episodes ([\d,]+)/([\d,]+) \((\d+)%\), [\d,]+/s, levels mastered \d+/\d+; "
    r"drawn since the last line: learnable \d+%, mastered \d+%, impossible \d+%$"
)


def demo_process(out: Path, episodes: int, workers: int = 2) -> subprocess.Popen[str]:
    """The CLI in a process of its own, stdout piped (not a terminal), stderr captured."""
    argv = [sys.executable, "-m", "curriculum_redis.cli", "demo", "--episodes", str(episodes)]
    argv += ["--workers", str(workers), "--tasks", "16", "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k not in ("CURRICULUM_REDIS_URL", "COLUMNS")}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def children(pid: int) -> set[int]:
    """Live child processes of ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] not in "ZX":
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in "ZX"


def wait_gone(pids: set[int], timeout: float = 15.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {pid for pid in pids if alive(pid)}
        if not left:
            return left
        time.sleep(0.1)
    return {pid for pid in pids if alive(pid)}


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, pytest.param(signal.SIGHUP, marks=pytest.mark.slow)], ids=["SIGTERM", "SIGHUP"]
)
def test_signal_stops_server_workers_and_resource_tracker(tmp_path: Path, sig: signal.Signals) -> None:
    # Far more episodes than it can play before the signal: the signal, not the end, stops it.
    proc = demo_process(tmp_path, episodes=50_000_000)
    assert proc.stdout is not None
    server_pid = 0
    worker_pids: set[int] = set()
    try:
        for line in proc.stdout:
            if match := SERVER_LINE.match(line.strip()):
                server_pid = int(match.group(4))
            if match := WORKERS_LINE.match(line.strip()):
                worker_pids = {int(p) for p in match.group(2).split(", ")}
                break
        assert server_pid and len(worker_pids) == 2, proc.stderr.read() if proc.stderr else ""
        time.sleep(1.0)  # the workers are playing episodes now
        spawned = children(proc.pid)
        assert {server_pid, *worker_pids} <= spawned
        assert len(spawned) >= 4, "redis-server, 2 workers and the resource tracker"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + sig, err
    assert f"stopped: terminated by {sig.name}" in err and "Traceback" not in err
    assert wait_gone(spawned) == set()
    assert (tmp_path / "redis" / "dump.rdb").exists(), "the server stopped gracefully and saved"


@pytest.mark.slow  # an end-to-end demo run of 20,000 episodes
def test_piped_output_shows_progress_lines(tmp_path: Path) -> None:
    # Enough episodes for several polls (every 0.5 s) even on a fast server: the default algorithm runs about
    # 1,800 episodes/s in one worker (20,000 took 11 s); learning progress once did 20,000 in 1.1 s, one line.
    proc = demo_process(tmp_path, episodes=20_000, workers=1)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    server = [m for line in lines if (m := SERVER_LINE.match(line))]
    assert len(server) == 1
    assert server[0].group(1).endswith("-server") and re.fullmatch(r"\d+\.\d+\.\d+", server[0].group(2))
    progress = [m for line in lines if (m := PROGRESS_LINE.match(line))]
    assert len(progress) >= 2, out
    done = [int(m.group(1).replace(",", "")) for m in progress]
    assert done == sorted(done) and done[-1] == 20_000
    assert progress[-1].group(3) == "100"
