"""The demo: several worker processes train one simulated student through a curriculum kept in Redis.

What it shows, end to end: real processes sharing one curriculum through a real Redis; the curriculum
finding the frontier of a student's ability (see :mod:`curriculum_redis.student`) and leaving impossible
tasks alone; the state it leaves behind, readable with ``redis-cli`` and persisted as an RDB file.

The learner. In distributed RL many actor processes feed one policy, so the workers here act for one
student: its skills live in shared memory (a ``multiprocessing`` array, updated under its lock) and every
episode any worker plays teaches the same student. The outcome (levels mastered) then depends on the
episode budget and on the curriculum, not on how many workers shared the work. The uniform baseline
trains a fresh student, in this process, for the same number of episodes, on tasks drawn uniformly from
the same generator.

The student's learning rate is scaled to the budget (``PACE / episodes`` unless given), so a demo of any
size tells the same story: a perfect curriculum would master every level with budget to spare, while
uniform sampling, which spends most episodes on tasks that teach nothing now, masters about a third.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.connection
import os
import shlex
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
import redis
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from curriculum_redis.config import CurriculumConfig, LearningProgressConfig, build
from curriculum_redis.curriculum import Curriculum
from curriculum_redis.embedded import EmbeddedRedis
from curriculum_redis.errors import ConfigError, CurriculumError
from curriculum_redis.state import COUNTER_NAMES
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.redis import RedisStore, client_from_url, redact
from curriculum_redis.student import (
    KINDS,
    SimulatedStudent,
    StudentParams,
    TaskKind,
    label_kind,
    student_task_generator,
    train_uniform,
)
from curriculum_redis.tables import label_table_view
from curriculum_redis.tasks import TaskGenerator

PACE = 40.0
"""Default ``learning_rate * episodes``: a perfect curriculum needs about a quarter of the budget."""

DEFAULT_EPISODES = 2_000_000
"""About 35-45 s of episodes with 2 workers on 2 cores, plus 5 s for the uniform baseline."""

EXIT_INTERRUPTED = 130


class DemoError(CurriculumError):
    """The demo could not run (a worker died, the namespace is taken, ...)."""


class DemoOptions(BaseModel):
    """What to run; the CLI's ``demo`` options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    episodes: int = Field(DEFAULT_EPISODES, ge=1)
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)
    tasks: int = Field(64, ge=1, le=100_000)
    seed: int = Field(0, ge=0)
    namespace: str = "demo"
    out: Path = Path("demo-output")
    redis_url: str | None = None
    replace: bool = False
    learning_rate: float | None = Field(None, gt=0.0)
    levels: int = Field(6, ge=1, le=64)
    lp_noise_correction: float = Field(0.0, ge=0.0)
    mastered: int = Field(1, ge=0, le=64)
    impossible: int = Field(1, ge=0, le=64)
    poll_s: float = Field(0.5, gt=0.0)
    progress: bool = True

    @classmethod
    def build(cls, **values: Any) -> DemoOptions:
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"invalid demo options: {problems}") from None

    @property
    def student_params(self) -> StudentParams:
        return StudentParams(learning_rate=self.learning_rate or PACE / self.episodes)

    def generator(self) -> TaskGenerator:
        return student_task_generator(self.levels, self.mastered, self.impossible)


class LabelRow(BaseModel):
    kind: str | None
    sampling_share: float
    sampling_probability: float
    mean_lp: float
    success_rate: float
    completions: int
    evictions: int


class LearnerResult(BaseModel):
    mastered_levels: int
    level_success: list[float]
    learnable_share: float
    mastered_share: float
    impossible_share: float
    history: list[tuple[int, int]] = Field(default_factory=list)
    seconds: float = 0.0


class RedisInfo(BaseModel):
    url: str
    namespace: str
    embedded: bool
    data_dir: str | None = None
    rdb_path: str | None = None
    rdb_bytes: int | None = None


class Series(BaseModel):
    """Sampling share of each label between consecutive polls of the counters."""

    seconds: list[float] = Field(default_factory=list)
    episodes: list[int] = Field(default_factory=list)
    share: dict[str, list[float]] = Field(default_factory=dict)


class DemoReport(BaseModel):
    episodes: int
    episodes_recorded: int
    workers: int
    tasks: int
    seed: int
    learning_rate: float
    seconds: float
    total_seconds: float
    labels: dict[str, LabelRow]
    impossible_share: float
    mastered_share: float
    final_impossible_probability: float
    lp: LearnerResult
    uniform: LearnerResult
    counters: dict[str, int]
    redis: RedisInfo
    plot: str | None
    series: Series


# --------------------------------------------------------------------------- worker processes


def _worker(
    config: CurriculumConfig,
    index: int,
    episodes: int,
    params: StudentParams,
    levels: int,
    skills: Any,
    stop: Any,
) -> None:
    """One actor: draw a task, play it with the shared student, report the score."""
    for sig in _PARENT_HANDLED:  # the parent handles Ctrl-C and hang-ups and tells us through ``stop``
        signal.signal(sig, signal.SIG_IGN)
    student = SimulatedStudent(
        config.seed * 1000 + index + 1, levels, params, skills=_skills_view(skills), lock=skills.get_lock()
    )
    with Curriculum(config) as curriculum:
        for done in range(episodes):
            if done % 512 == 0 and stop.is_set():
                break
            task = curriculum.get_task()
            curriculum.update_task_performance(task.task_id, student.episode(task.env_cfg))


def _skills_view(skills: Any) -> npt.NDArray[np.float64]:
    """A numpy view on a ``multiprocessing.Array('d', n)``: writes go to the shared memory."""
    return np.frombuffer(memoryview(skills.get_obj()), dtype=np.float64)


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


_PARENT_HANDLED = (signal.SIGINT, signal.SIGHUP)
"""Signals a terminal sends to the whole process group; the parent turns them into a clean stop. SIGTERM
stays at its default in workers: it is what ``Process.terminate`` sends to one that hangs."""


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Start children with SIGINT and SIGHUP ignored (inherited across exec), so Ctrl-C or a closed
    terminal reaches only the parent, which stops them in order."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in _PARENT_HANDLED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass
class _Workers:
    processes: list[multiprocessing.process.BaseProcess]
    stop: Any

    def failed(self) -> list[tuple[int, int]]:
        return [(i, p.exitcode) for i, p in enumerate(self.processes) if p.exitcode not in (None, 0)]

    def alive(self) -> bool:
        return any(p.is_alive() for p in self.processes)

    def wait(self, timeout: float) -> None:
        sentinels = [p.sentinel for p in self.processes if p.is_alive()]
        if sentinels:
            multiprocessing.connection.wait(sentinels, timeout)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Ask workers to stop (they flush what they hold), then terminate any that hang."""
        self.stop.set()
        deadline = time.monotonic() + timeout
        for p in self.processes:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in self.processes:
            if p.is_alive():
                p.terminate()
                p.join(2.0)


# --------------------------------------------------------------------------- sampling the run


def _label_samples(stats: dict[str, float]) -> dict[str, float]:
    return {key[len("label/") : -len("/samples")]: v for key, v in stats.items() if _is_samples_key(key)}


def _is_samples_key(key: str) -> bool:
    return key.startswith("label/") and key.endswith("/samples")


def _episodes_done(stats: dict[str, float]) -> int:
    return int(stats.get("num_completed", 0))


@dataclass
class _Recorder:
    """Polls the curriculum's counters: progress, label sampling shares, and the learner's mastery."""

    monitor: Curriculum
    learner: SimulatedStudent
    started: float
    series: Series = field(default_factory=Series)
    history: list[tuple[int, int]] = field(default_factory=list)
    _last: dict[str, float] = field(default_factory=dict)
    last_stats: dict[str, float] = field(default_factory=dict)

    def poll(self) -> int:
        stats = self.monitor.stats()
        self.last_stats = stats
        samples = _label_samples(stats)
        delta = {label: n - self._last.get(label, 0.0) for label, n in samples.items()}
        total = sum(delta.values())
        done = _episodes_done(stats)
        if total > 0:
            index = len(self.series.seconds)
            self.series.seconds.append(round(time.monotonic() - self.started, 3))
            self.series.episodes.append(done)
            for label, d in sorted(delta.items()):
                column = self.series.share.setdefault(label, [0.0] * index)
                column.append(d / total)
            for column in self.series.share.values():
                column.extend([0.0] * (index + 1 - len(column)))
            self._last = samples
        self.history.append((done, self.learner.mastered_levels()))
        return done


# --------------------------------------------------------------------------- the run


def _shares(counts: dict[TaskKind, float]) -> tuple[float, float, float]:
    total = sum(counts.values()) or 1.0
    return counts["learnable"] / total, counts["mastered"] / total, counts["impossible"] / total


def _kind_samples(table: dict[str, dict[str, float]]) -> dict[TaskKind, float]:
    counts: dict[TaskKind, float] = dict.fromkeys(KINDS, 0.0)
    for label, row in table.items():
        kind = label_kind(label)
        if kind is not None:
            counts[kind] += row["samples"]
    return counts


def label_rows(table: dict[str, dict[str, float]]) -> dict[str, LabelRow]:
    """The report's per-label rows: share of all samples, current probability, LP, success, counts."""
    total = sum(row["samples"] for row in table.values()) or 1.0
    return {
        label: LabelRow(
            kind=label_kind(label),
            sampling_share=row["samples"] / total,
            sampling_probability=row["sampling_probability"],
            mean_lp=row["mean_lp"],
            success_rate=row["success_rate"],
            completions=int(row["completions"]),
            evictions=int(row["evictions"]),
        )
        for label, row in table.items()
    }


def _prepare_namespace(url: str, namespace: str, drop: bool) -> None:
    from curriculum_redis.admin import drop_namespace

    client = client_from_url(url)
    try:
        exists = client.exists(NamespaceKeys(namespace).meta)
        if exists and not drop:
            raise DemoError(
                f"namespace {namespace!r} already exists on {redact(url)}; pass --replace to drop it first, "
                "or choose another --namespace"
            )
        if exists:
            drop_namespace(client, namespace)
    except redis.exceptions.ConnectionError as exc:
        raise DemoError(f"cannot reach {redact(url)}: {exc}") from exc
    finally:
        client.close()


def _run_workers(
    options: DemoOptions, config: CurriculumConfig, console: Console
) -> tuple[_Recorder, dict[str, dict[str, float]]]:
    ctx = multiprocessing.get_context("spawn")
    skills = ctx.Array("d", options.levels)
    learner = SimulatedStudent(
        options.seed, options.levels, options.student_params, skills=_skills_view(skills), lock=skills.get_lock()
    )
    monitor = Curriculum(config)
    try:
        recorder = _Recorder(monitor, learner, time.monotonic())
        recorder.poll()  # attaches and fills the pool before any worker starts
        workers = _Workers([], ctx.Event())
        try:
            with _sigint_ignored():
                for index, episodes in enumerate(_split(options.episodes, options.workers)):
                    args = (config, index, episodes, options.student_params, options.levels, skills, workers.stop)
                    process = ctx.Process(target=_worker, args=args, name=f"curriculum-demo-{index}", daemon=True)
                    process.start()
                    workers.processes.append(process)
            pids = ", ".join(str(p.pid) for p in workers.processes)
            console.print(f"started {len(workers.processes)} worker processes (pids {pids})", highlight=False)
            _watch(options, workers, recorder, console)
        finally:
            workers.shutdown()
        if workers.failed():
            index, code = workers.failed()[0]
            raise DemoError(f"worker {index} exited with code {code} (its error is printed above)")
        recorder.poll()
        return recorder, monitor.label_table()
    finally:
        monitor.close()


def _watch(options: DemoOptions, workers: _Workers, recorder: _Recorder, console: Console) -> None:
    """Wait for the workers, showing progress: a live bar on a terminal, plain lines otherwise."""
    columns = (
        TextColumn("[bold]episodes"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[mastery]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    levels = options.levels
    live = options.progress and console.is_terminal
    lines = _ProgressLines(console, options.episodes, levels) if options.progress and not live else None
    with Progress(*columns, console=console, disable=not live, refresh_per_second=4) as progress:
        bar = progress.add_task("episodes", total=options.episodes, mastery=f"levels mastered 0/{levels}")
        while workers.alive():
            workers.wait(options.poll_s)
            if workers.failed():
                workers.stop.set()
                return
            done = recorder.poll()
            mastered = recorder.history[-1][1]
            progress.update(bar, completed=min(done, options.episodes), mastery=f"levels mastered {mastered}/{levels}")
            if lines is not None:
                lines.update(done, recorder.last_stats, mastered)
    if lines is not None:
        lines.update(recorder.poll(), recorder.last_stats, recorder.history[-1][1], final=True)


@dataclass
class _ProgressLines:
    """Progress as plain lines, for output that is not a terminal (a log file, a pipe, CI): one line at
    every tenth of the episodes or every ``every_s`` seconds, whichever comes first, and one at the end."""

    console: Console
    total: int
    levels: int
    every_s: float = 10.0
    _decile: int = 0
    _done: int = 0
    _time: float = field(default_factory=time.monotonic)
    _kinds: dict[TaskKind, float] = field(default_factory=dict)

    def update(self, done: int, stats: dict[str, float], mastered: int, final: bool = False) -> None:
        now = time.monotonic()
        decile = min(10, done * 10 // max(self.total, 1))
        due = decile > self._decile or now - self._time >= self.every_s
        if (final and done == self._done) or not (final or due):
            return
        kinds: dict[TaskKind, float] = dict.fromkeys(KINDS, 0.0)
        for label, samples in _label_samples(stats).items():
            kind = label_kind(label)
            if kind is not None:
                kinds[kind] += samples
        delta = {kind: kinds[kind] - self._kinds.get(kind, 0.0) for kind in KINDS}
        drawn = sum(delta.values()) or 1.0
        shares = ", ".join(f"{kind} {delta[kind] / drawn:.0%}" for kind in KINDS)
        rate = (done - self._done) / max(now - self._time, 1e-9)
        self.console.print(
            f"episodes {done:,}/{self.total:,} ({done / max(self.total, 1):.0%}), {rate:,.0f}/s, "
            f"levels mastered {mastered}/{self.levels}; drawn since the last line: {shares}",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
        self._decile, self._done, self._time, self._kinds = decile, done, now, kinds


def run_demo(options: DemoOptions, console: Console | None = None) -> DemoReport:
    """Run the LP curriculum with workers on Redis, then the uniform baseline; write the report and plot.

    Ctrl-C stops the workers and the embedded server, then re-raises KeyboardInterrupt.
    """
    console = console or Console()
    started = time.monotonic()
    config = demo_config(options, options.redis_url)  # refuses a bad namespace or URL before starting anything
    out = options.out.absolute()
    out.mkdir(parents=True, exist_ok=True)
    server: EmbeddedRedis | None = None
    if options.redis_url is None:
        server = EmbeddedRedis(data_dir=out / "redis", persistence="rdb", keep_data=True)
    try:
        url = server.start().url if server is not None else str(options.redis_url)
        config = config.model_copy(update={"redis_url": url})
        _prepare_namespace(url, options.namespace, drop=options.replace or server is not None)
        console.print(describe_server(url, server), soft_wrap=True, markup=False, highlight=False)
        console.print(
            f"[bold]LP curriculum[/]: {options.episodes:,} episodes, {options.workers} workers, "
            f"{options.tasks} active tasks, namespace {options.namespace!r} on {redact(url)}",
            soft_wrap=True,
        )
        lp_started = time.monotonic()
        recorder, table = _run_workers(options, config, console)
        lp_seconds = time.monotonic() - lp_started
        task_key = _busiest_task_key(config)
    finally:
        if server is not None:
            server.stop()
    console.print(f"[bold]uniform sampling[/]: {options.episodes:,} episodes, same generator, in this process")
    uniform = run_uniform(options)
    report = _report(options, recorder, table, uniform, lp_seconds, url, server, time.monotonic() - started)
    plot = plot_sampling_share(report, out / "sampling_share.png")
    report = report.model_copy(update={"plot": str(plot) if plot else None})
    (out / "report.json").write_text(json.dumps(report.model_dump(mode="json"), indent=2) + "\n")
    print_summary(report, console, task_key)
    plotted = f", plot: {plot}" if plot else " (no plot: install matplotlib)"
    console.print(f"report: {out / 'report.json'}{plotted}", soft_wrap=True, markup=False, highlight=False)
    return report


def server_version(url: str) -> tuple[str, str, str | None]:
    """``(name, version, executable)`` from ``INFO server``: Valkey reports ``server_name:valkey`` and
    ``valkey_version`` (its ``redis_version`` is a compatibility number); Redis only ``redis_version``."""
    client = client_from_url(url)
    try:
        info: dict[str, Any] = dict(client.info("server"))
    finally:
        client.close()
    if "redis_version" not in info:  # a cluster client answers per node: {"host:port": {...}}
        info = next((v for v in info.values() if isinstance(v, dict)), {})
    name = str(info.get("server_name") or "redis")
    version = str(info.get(f"{name}_version") or info.get("redis_version") or "unknown")
    executable = info.get("executable")
    return name, version, str(executable) if executable else None


def describe_server(url: str, server: EmbeddedRedis | None) -> str:
    """What the demo runs on, e.g. ``started valkey-server 9.1.2 (/path/valkey-server, pid 42) on
    127.0.0.1:6400`` for its own server, ``using redis 7.0.15 at redis://db:6379/0`` for a given one."""
    try:
        name, version, executable = server_version(url)
    except redis.exceptions.RedisError as exc:
        return f"using {redact(url)} (INFO server failed: {exc})"
    if server is None:
        return f"using {name} {version} at {redact(url)}"
    binary = Path(executable).name if executable else f"{name}-server"
    where = f"{executable}, pid {server.pid}" if executable else f"pid {server.pid}"
    parts = urlsplit(url)
    return f"started {binary} {version} ({where}) on {parts.hostname}:{parts.port}"


def demo_config(options: DemoOptions, redis_url: str | None) -> CurriculumConfig:
    """The curriculum every worker joins: the student's tasks and the default (reference) LP
    hyperparameters; ``lp_noise_correction`` switches on the noise-corrected LP."""
    return build(
        CurriculumConfig,
        {
            "task_generator": options.generator(),
            "algorithm": LearningProgressConfig(
                num_active_tasks=options.tasks, lp_noise_correction=options.lp_noise_correction
            ),
            "seed": options.seed,
            "redis_url": redis_url,
            "namespace": options.namespace,
        },
    )


def _busiest_task_key(config: CurriculumConfig) -> str | None:
    assert config.redis_url is not None
    store = RedisStore.from_url(config.redis_url, config.namespace)
    try:
        snap = store.snapshot()
    finally:
        store.close()
    if not snap.size:
        return None
    return NamespaceKeys(config.namespace).task(int(snap.task_ids[int(np.argmax(snap.column("completions")))]))


def run_uniform(options: DemoOptions) -> LearnerResult:
    """The baseline: a fresh student trained on tasks drawn uniformly from the same generator."""
    started = time.monotonic()
    student = SimulatedStudent(options.seed, options.levels, options.student_params)
    rng = np.random.default_rng([options.seed, 1])
    spent, history = train_uniform(
        student, options.generator(), options.episodes, rng, every=max(1, options.episodes // 100)
    )
    learnable, mastered, impossible = _shares({k: float(v) for k, v in spent.items()})
    return LearnerResult(
        mastered_levels=student.mastered_levels(),
        level_success=[round(p, 4) for p in student.level_probabilities()],
        learnable_share=learnable,
        mastered_share=mastered,
        impossible_share=impossible,
        history=history,
        seconds=time.monotonic() - started,
    )


def _report(
    options: DemoOptions,
    recorder: _Recorder,
    table: dict[str, dict[str, float]],
    uniform: LearnerResult,
    lp_seconds: float,
    url: str,
    server: EmbeddedRedis | None,
    total_seconds: float,
) -> DemoReport:
    learnable, mastered, impossible = _shares(_kind_samples(table))
    learner = recorder.learner
    rows = label_rows(table)
    redis_info = RedisInfo(url=redact(url), namespace=options.namespace, embedded=server is not None)
    if server is not None:
        rdb = server.data_dir / "dump.rdb"
        redis_info = redis_info.model_copy(
            update={
                "data_dir": str(server.data_dir),
                "rdb_path": str(rdb),
                "rdb_bytes": rdb.stat().st_size if rdb.exists() else None,
            }
        )
    stats = recorder.last_stats
    return DemoReport(
        episodes=options.episodes,
        episodes_recorded=_episodes_done(stats),
        workers=options.workers,
        tasks=options.tasks,
        seed=options.seed,
        learning_rate=options.student_params.learning_rate,
        seconds=round(lp_seconds, 3),
        total_seconds=round(total_seconds, 3),
        labels=rows,
        impossible_share=impossible,
        mastered_share=mastered,
        final_impossible_probability=sum(r.sampling_probability for r in rows.values() if r.kind == "impossible"),
        lp=LearnerResult(
            mastered_levels=learner.mastered_levels(),
            level_success=[round(p, 4) for p in learner.level_probabilities()],
            learnable_share=learnable,
            mastered_share=mastered,
            impossible_share=impossible,
            history=recorder.history,
            seconds=round(lp_seconds, 3),
        ),
        uniform=uniform,
        counters={name: int(stats.get(name, 0)) for name in COUNTER_NAMES},
        redis=redis_info,
        plot=None,
        series=recorder.series,
    )


# --------------------------------------------------------------------------- output


def label_rich_table(rows: dict[str, LabelRow], title: str = "per-label statistics", width: int = 80) -> Table:
    """The per-label rows as a table that fits ``width`` (impossible tasks in red, mastered ones dim)."""
    data = {label: row.model_dump(exclude={"kind"}) for label, row in rows.items()}
    styles = ["red" if r.kind == "impossible" else ("dim" if r.kind == "mastered" else None) for r in rows.values()]
    return label_table_view(data, title, width, styles)


def print_summary(report: DemoReport, console: Console, task_key: str | None = None) -> None:
    console.print(label_rich_table(report.labels, width=console.width))
    comparison = Table(title=f"same budget: {report.episodes:,} episodes", box=box.SIMPLE_HEAD)
    comparison.add_column("")
    comparison.add_column("learning progress", justify="right")
    comparison.add_column("uniform", justify="right")
    lp, uniform = report.lp, report.uniform
    comparison.add_row(
        "levels mastered",
        f"{lp.mastered_levels}/{len(lp.level_success)}",
        f"{uniform.mastered_levels}/{len(uniform.level_success)}",
    )
    for level, (a, b) in enumerate(zip(lp.level_success, uniform.level_success, strict=True), start=1):
        comparison.add_row(f"  success on level {level}", f"{a:.2f}", f"{b:.2f}")
    for kind in ("learnable", "mastered", "impossible"):
        share = f"{kind}_share"
        comparison.add_row(f"episodes on {kind} tasks", f"{getattr(lp, share):.1%}", f"{getattr(uniform, share):.1%}")
    console.print(comparison)
    console.print(
        f"impossible tasks: {report.impossible_share:.1%} of the LP curriculum's episodes "
        f"(uniform: {report.uniform.impossible_share:.1%}); their sampling probability at the end: "
        f"{report.final_impossible_probability:.2%}"
    )
    console.print(
        f"LP run: {report.seconds:.1f} s ({report.episodes_recorded / max(report.seconds, 1e-9):,.0f} episodes/s "
        f"with {report.workers} workers); whole demo {report.total_seconds:.1f} s"
    )
    console.print("\n[bold]Inspect the state it left in Redis:[/]")
    for line in redis_cli_commands(report.redis, task_key):  # never wrapped: they are meant to be pasted
        console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)


def redis_cli_commands(info: RedisInfo, task_key: str | None = None) -> list[str]:
    """redis-cli lines that show the namespace (never with a password: ``--askpass`` prompts for it)."""
    parts = urlsplit(info.url)
    cli = ["redis-cli"]
    if parts.scheme == "unix":
        cli += ["-s", parts.path]
    else:
        cli += ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 6379)]
        db = parts.path.strip("/")
        if db and db != "0":
            cli += ["-n", db]
    if parts.password is not None:
        cli.append("--askpass")
    if parts.scheme == "rediss":
        cli.append("--tls")
    prefix = " ".join(shlex.quote(p) for p in cli)
    keys = NamespaceKeys(info.namespace)
    lines = []
    if info.embedded and info.data_dir is not None:
        lines.append("# the demo's server has stopped and saved its RDB file; start it again on the same data:")
        lines.append(f"redis-server --dir {shlex.quote(info.data_dir)} --port {parts.port} --save '' &")
    for key in (keys.meta, keys.counters, keys.labels):
        lines.append(f"{prefix} HGETALL {shlex.quote(key)}")
    if task_key is not None:
        lines.append(f"{prefix} HGETALL {shlex.quote(task_key)}")
    lines.append(f"{prefix} --scan --pattern {shlex.quote(keys.prefix + ':*')} | head")
    if info.embedded:
        lines.append(f"{prefix} SHUTDOWN NOSAVE   # when done")
    return lines


def plot_sampling_share(report: DemoReport, path: Path) -> Path | None:
    """A PNG of each label's sampling share over the run (and levels mastered, LP vs uniform).

    Returns None when matplotlib is not installed (the ``plot`` extra).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    series = report.series
    fig = Figure(figsize=(12, 8), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    learnable = sorted(label for label, row in report.labels.items() if row.kind == "learnable")
    colors = _colormap(len(learnable))
    for label, values in sorted(series.share.items()):
        kind = label_kind(label)
        marker = "o" if len(values) < 20 else None
        if kind == "impossible":
            style: dict[str, Any] = {"color": "tab:red", "linestyle": "--", "linewidth": 2}
        elif kind == "mastered":
            style = {"color": "tab:gray", "linestyle": ":", "linewidth": 2}
        else:
            style = {"color": colors[learnable.index(label)] if label in learnable else None}
        top.plot(series.episodes, values, label=label.removeprefix("student:"), marker=marker, **style)
    top.set_ylabel("sampling share (between polls)")
    top.set_ylim(0.0, 1.0)
    top.set_title(f"Learning-progress curriculum: {report.episodes:,} episodes, {report.workers} workers")
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    top.grid(alpha=0.3)
    learners = (("learning progress", report.lp, "tab:blue"), ("uniform", report.uniform, "tab:orange"))
    for name, result, color in learners:
        if result.history:
            xs, ys = zip(*result.history, strict=True)
            bottom.step(xs, ys, where="post", label=name, color=color)
    bottom.set_xlabel("episodes")
    bottom.set_ylabel("levels mastered")
    bottom.set_ylim(-0.2, len(report.lp.level_success) + 0.2)
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    bottom.grid(alpha=0.3)
    fig.savefig(path, dpi=100)
    return path


def _colormap(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(0.1 + 0.8 * i / max(n - 1, 1)) for i in range(n)]
