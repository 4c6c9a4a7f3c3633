"""Runs the demo's workers and watches them: several processes train one simulated student through a
curriculum kept in Redis.

What it shows, end to end: real processes sharing one curriculum through a real Redis; the curriculum
finding the frontier of a student's ability (see :mod:`curriculum_redis.demo.student`) and leaving impossible
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
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from rich.console import Console

from curriculum_redis.admin import drop_namespace
from curriculum_redis.algorithms import DEFAULT_ALGORITHM, parse_config, pool_algorithms
from curriculum_redis.config import CurriculumConfig, build
from curriculum_redis.curriculum import Curriculum
from curriculum_redis.demo.progress import Recorder, episodes_done, watch
from curriculum_redis.demo.report import (
    DemoReport,
    LearnerResult,
    RedisInfo,
    busiest_task_key,
    describe_server,
    kind_samples,
    label_rows,
    plot_sampling_share,
    print_summary,
    shares,
)
from curriculum_redis.demo.server import EmbeddedRedis
from curriculum_redis.demo.student import SimulatedStudent, StudentParams, student_task_generator, train_uniform
from curriculum_redis.demo.workers import skills_view, start_workers
from curriculum_redis.errors import ConfigError, CurriculumError
from curriculum_redis.state import COUNTER_NAMES
from curriculum_redis.store.connection import client_from_url
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.url import redact
from curriculum_redis.tasks import TaskGenerator

PACE = 40.0
"""Default ``learning_rate * episodes``: a perfect curriculum needs about a quarter of the budget."""

DEFAULT_EPISODES = 200_000
"""About 60 s of episodes with 2 workers on 2 cores (the default algorithm refreshes every 10 draws, about
3,500 episodes/s in all), plus 1 s for the uniform baseline."""


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
    algorithm: str = DEFAULT_ALGORITHM
    lp_noise_correction: float | None = Field(None, ge=0.0)
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

    @field_validator("algorithm")
    @classmethod
    def _known_algorithm(cls, name: str) -> str:
        if name not in pool_algorithms():
            raise ValueError(f"unknown algorithm {name!r}; choose one of {', '.join(sorted(pool_algorithms()))}")
        return name

    @model_validator(mode="after")
    def _noise_correction_needs_lp(self) -> DemoOptions:
        if self.lp_noise_correction is not None and self.algorithm != "learning_progress":
            raise ValueError(f"lp_noise_correction applies to learning_progress only, not to {self.algorithm}")
        return self

    @property
    def student_params(self) -> StudentParams:
        return StudentParams(learning_rate=self.learning_rate or PACE / self.episodes)

    def generator(self) -> TaskGenerator:
        return student_task_generator(self.levels, self.mastered, self.impossible)


def _prepare_namespace(url: str, namespace: str, drop: bool) -> None:
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
) -> tuple[Recorder, dict[str, dict[str, float]]]:
    ctx = multiprocessing.get_context("spawn")
    skills = ctx.Array("d", options.levels)
    learner = SimulatedStudent(
        options.seed, options.levels, options.student_params, skills=skills_view(skills), lock=skills.get_lock()
    )
    monitor = Curriculum(config)
    try:
        recorder = Recorder(monitor, learner, time.monotonic())
        recorder.poll()  # attaches and fills the pool before any worker starts
        workers = start_workers(
            ctx, config, options.episodes, options.workers, options.student_params, options.levels, skills
        )
        try:
            pids = ", ".join(str(p.pid) for p in workers.processes)
            console.print(f"started {len(workers.processes)} worker processes (pids {pids})", highlight=False)
            watch(
                workers,
                recorder,
                console,
                total=options.episodes,
                levels=options.levels,
                progress=options.progress,
                poll_s=options.poll_s,
            )
        finally:
            workers.shutdown()
        if workers.failed():
            index, code = workers.failed()[0]
            raise DemoError(f"worker {index} exited with code {code} (its error is printed above)")
        recorder.poll()
        return recorder, monitor.label_table()
    finally:
        monitor.close()


def run_demo(options: DemoOptions, console: Console | None = None) -> DemoReport:
    """Run the curriculum with workers on Redis, then the uniform baseline; write the report and plot.

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
            f"[bold]{options.algorithm} curriculum[/]: {options.episodes:,} episodes, {options.workers} workers, "
            f"{options.tasks} active tasks, namespace {options.namespace!r} on {redact(url)}",
            soft_wrap=True,
        )
        run_started = time.monotonic()
        recorder, table = _run_workers(options, config, console)
        run_seconds = time.monotonic() - run_started
        task_key = busiest_task_key(config)
    finally:
        if server is not None:
            server.stop()
    console.print(f"[bold]uniform sampling[/]: {options.episodes:,} episodes, same generator, in this process")
    uniform = run_uniform(options)
    report = _report(options, recorder, table, uniform, run_seconds, url, server, time.monotonic() - started)
    plot = plot_sampling_share(report, out / "sampling_share.png")
    report = report.model_copy(update={"plot": str(plot) if plot else None})
    (out / "report.json").write_text(json.dumps(report.model_dump(mode="json"), indent=2) + "\n")
    print_summary(report, console, task_key)
    plotted = f", plot: {plot}" if plot else " (no plot: install matplotlib)"
    console.print(f"report: {out / 'report.json'}{plotted}", soft_wrap=True, markup=False, highlight=False)
    return report


def demo_config(options: DemoOptions, redis_url: str | None) -> CurriculumConfig:
    """The curriculum every worker joins: the student's tasks and the chosen algorithm's default
    hyperparameters (the library's default algorithm unless ``--algorithm`` names another)."""
    values: dict[str, Any] = {"algorithm": options.algorithm, "num_active_tasks": options.tasks}
    if options.lp_noise_correction is not None:
        values["lp_noise_correction"] = options.lp_noise_correction
    return build(
        CurriculumConfig,
        {
            "task_generator": options.generator(),
            "algorithm": parse_config(values),
            "seed": options.seed,
            "redis_url": redis_url,
            "namespace": options.namespace,
        },
    )


def run_uniform(options: DemoOptions) -> LearnerResult:
    """The baseline: a fresh student trained on tasks drawn uniformly from the same generator."""
    started = time.monotonic()
    student = SimulatedStudent(options.seed, options.levels, options.student_params)
    rng = np.random.default_rng([options.seed, 1])
    spent, history = train_uniform(
        student, options.generator(), options.episodes, rng, every=max(1, options.episodes // 100)
    )
    learnable, mastered, impossible = shares({k: float(v) for k, v in spent.items()})
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
    recorder: Recorder,
    table: dict[str, dict[str, float]],
    uniform: LearnerResult,
    run_seconds: float,
    url: str,
    server: EmbeddedRedis | None,
    total_seconds: float,
) -> DemoReport:
    learnable, mastered, impossible = shares(kind_samples(table))
    learner = recorder.learner
    rows = label_rows(table)
    redis_info = RedisInfo(url=redact(url), namespace=options.namespace, embedded=server is not None)
    if server is not None:
        rdb = server.data_dir / "dump.rdb"
        redis_info = redis_info.model_copy(
            update={
                "data_dir": str(server.data_dir),
                "server_binary": server.binary_path,
                "rdb_path": str(rdb),
                "rdb_bytes": rdb.stat().st_size if rdb.exists() else None,
            }
        )
    stats = recorder.last_stats
    return DemoReport(
        algorithm=options.algorithm,
        episodes=options.episodes,
        episodes_recorded=episodes_done(stats),
        workers=options.workers,
        tasks=options.tasks,
        seed=options.seed,
        learning_rate=options.student_params.learning_rate,
        seconds=round(run_seconds, 3),
        total_seconds=round(total_seconds, 3),
        labels=rows,
        impossible_share=impossible,
        mastered_share=mastered,
        final_impossible_probability=sum(r.sampling_probability for r in rows.values() if r.kind == "impossible"),
        curriculum=LearnerResult(
            mastered_levels=learner.mastered_levels(),
            level_success=[round(p, 4) for p in learner.level_probabilities()],
            learnable_share=learnable,
            mastered_share=mastered,
            impossible_share=impossible,
            history=recorder.history,
            seconds=round(run_seconds, 3),
        ),
        uniform=uniform,
        counters={name: int(stats.get(name, 0)) for name in COUNTER_NAMES},
        redis=redis_info,
        plot=None,
        series=recorder.series,
    )
