"""The quality suite's engine: one learner per (benchmark, sampler, seed), trained for a fixed budget.

A benchmark is a finite task space (one env config per task, each known to be possible or not) and a
learner that transfers across tasks. A sampler row picks each episode's task: uniformly without the
library, through the library (``Curriculum`` driven by ``CurriculumEnv``), a privileged oracle, or a
custom :class:`~curriculum_redis.env.CurriculumLike` (how experiments plug in candidate designs).

Per run we record the learning curve (performance at evenly spaced checkpoints, computed exactly by the
benchmark), and classify every episode: on an impossible task, or on a task already solved at the last
checkpoint. Those shares say where a curriculum wastes its budget.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import gymnasium
import numpy as np
import numpy.typing as npt

from curriculum_redis import Curriculum, CurriculumConfig, TaskGenerator
from curriculum_redis.env import CurriculumEnv, CurriculumLike

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TaskSpace:
    """A finite task space. ``generator`` yields exactly these configs (uniformly over tasks), so a
    library pool holds the same tasks as the uniform row draws."""

    configs: list[dict[str, Any]]
    impossible: BoolArray
    counted: BoolArray
    """Tasks the performance averages over (possible ones; for the student, the learnable families)."""
    generator: TaskGenerator
    key: Callable[[Mapping[str, Any]], int]
    """The task index of an env config."""
    grouped: TaskGenerator | None = None
    """The same tasks, labelled by a group of neighbouring tasks (FrozenLake: 3x3 blocks of start cells), for
    rows that pool progress over a label; ``None`` where ``generator``'s labels already group tasks."""
    located: TaskGenerator | None = None
    """``generator`` with ``coordinates`` that place each task in task space (FrozenLake: the start's row and
    column; MiniGrid: the room's size); ``None`` where tasks have no such coordinates."""

    @property
    def size(self) -> int:
        return len(self.configs)


class Run(Protocol):
    """One learner on one seed, with the environment it trains in."""

    env: gymnasium.Env[Any, Any]

    def apply(self, env: gymnasium.Env[Any, Any], cfg: Mapping[str, Any]) -> None:
        """Configure ``env`` (the unwrapped env underneath) for the task ``cfg`` before a reset."""

    def play(self, env: gymnasium.Env[Any, Any]) -> tuple[float, float]:
        """One training episode on ``env`` (reset included): (success 0/1, mean |TD error| of the episode)."""

    def evaluate(self) -> FloatArray:
        """Each task's current success (greedy policy, exact), in [0, 1]."""

    def oracle(self, rng: np.random.Generator, solved: BoolArray) -> int:
        """The privileged curriculum's next task index, given which tasks are solved."""


class Benchmark(Protocol):
    name: str
    episodes: int
    checkpoints: int

    def space(self) -> TaskSpace: ...

    def solved_threshold(self) -> FloatArray:
        """Per task: the success at or above which it counts as solved."""

    def new_run(self, seed: int) -> Run: ...


CustomFactory = Callable[[TaskSpace, int], CurriculumLike]


@dataclass(frozen=True)
class Row:
    """A sampler: ``uniform`` (no library), ``oracle``, ``library`` (a CurriculumConfig's algorithm and
    sampler fields) or ``custom`` (a CurriculumLike built by ``factory``)."""

    name: str
    kind: Literal["uniform", "oracle", "library", "custom"]
    algorithm: dict[str, Any] | None = None
    sampler: dict[str, Any] | None = None
    score: Literal["success", "td"] = "success"
    """``td``: report the episode's mean |TD error| after the episode (prioritized level replay's value loss)."""
    factory: CustomFactory | None = None
    note: str = ""
    grouped: bool = False
    """Use the space's ``grouped`` generator (labels shared by neighbouring tasks) where it has one."""
    located: bool = False
    """Use the space's ``located`` generator (tasks with coordinates) where it has one."""


def library_rows() -> list[Row]:
    """The library as a user would run it: its default (frontier), then every algorithm with default settings."""
    return [
        Row("library default", "library", note="CurriculumConfig() default algorithm (frontier) and sampler"),
        Row("library default, block labels", "library", grouped=True,
            note="as above; FrozenLake labels are 3x3 blocks of start cells (a TaskGeneratorSet)"),
        Row("library default, coordinates", "library", located=True,
            note="the generator gives tasks coordinates: FrozenLake starts their row and column, MiniGrid rooms "
                 "their size"),
        Row("learning_progress", "library", {"algorithm": "learning_progress"},
            note="LearningProgressConfig(): the default before, the replaced system's algorithm"),
        Row("prioritized_replay (|TD|)", "library", {"algorithm": "prioritized_replay"}, score="td",
            note="score = mean |TD error|, reported after the episode (not via CurriculumEnv)"),
        Row("learnability", "library", {"algorithm": "learnability"}),
        Row("uniform (library)", "library", {"algorithm": "uniform"}),
    ]  # fmt: skip


def standard_rows() -> list[Row]:
    return [Row("uniform (no library)", "uniform"), *library_rows(), Row("oracle (privileged)", "oracle")]


def success_score(total_return: float, info: dict[str, Any]) -> float:
    return 1.0 if total_return > 0.0 else 0.0


def build_sampler(row: Row, space: TaskSpace, seed: int) -> CurriculumLike | None:
    if row.kind == "library":
        generator = space.grouped if row.grouped and space.grouped is not None else space.generator
        if row.located and space.located is not None:
            generator = space.located
        data: dict[str, Any] = {"task_generator": generator, "seed": seed}
        if row.algorithm is not None:
            data["algorithm"] = row.algorithm
        if row.sampler is not None:
            data["sampler"] = row.sampler
        return Curriculum(CurriculumConfig.model_validate(data))
    if row.kind == "custom":
        assert row.factory is not None, f"custom row {row.name!r} needs a factory"
        return row.factory(space, seed)
    return None


@dataclass
class Tally:
    """Where the budget went, and the learning curve."""

    episodes: int = 0
    impossible: int = 0
    solved: int = 0
    presolved: int = 0
    curve: list[float] = field(default_factory=list)
    per_task: FloatArray | None = None


def run_one(bench: Benchmark, row: Row, seed: int) -> dict[str, Any]:
    """Train one fresh learner with ``row``'s sampler; return its metrics."""
    started = time.perf_counter()
    space = bench.space()
    threshold = bench.solved_threshold()
    run = bench.new_run(seed)
    rng = np.random.default_rng([seed, 7])
    sampler = build_sampler(row, space, seed)
    wrapper: CurriculumEnv[Any, Any] | None = None
    if sampler is not None and row.score == "success":
        wrapper = CurriculumEnv(run.env, sampler, apply_task=lambda env, task: run.apply(env, task.env_cfg),
                                score_fn=success_score)  # fmt: skip
    every = max(1, bench.episodes // bench.checkpoints)
    oracle_every = max(1, min(every, 25))
    tally = Tally()
    solved = run.evaluate() >= threshold
    presolved = solved.copy()  # solved before any training: the student's mastered tasks
    try:
        for episode in range(bench.episodes):
            if wrapper is not None:
                run.play(wrapper)
                assert wrapper.task is not None
                index = space.key(wrapper.task.env_cfg)
            elif sampler is not None:  # a score known only after the episode
                task = sampler.get_task()
                index = space.key(task.env_cfg)
                run.apply(run.env, task.env_cfg)
                _, td = run.play(run.env)
                sampler.update_task_performance(task.task_id, td)
            else:
                index = run.oracle(rng, solved) if row.kind == "oracle" else int(rng.integers(space.size))
                run.apply(run.env, space.configs[index])
                run.play(run.env)
            tally.episodes += 1
            tally.impossible += bool(space.impossible[index])
            tally.solved += bool(solved[index])
            tally.presolved += bool(presolved[index])
            done = episode + 1
            if done % every == 0 or (row.kind == "oracle" and done % oracle_every == 0):
                success = run.evaluate()
                solved = success >= threshold
                if done % every == 0:
                    tally.curve.append(float(success[space.counted].mean()))
                    tally.per_task = success
    finally:
        if sampler is not None:
            closer = getattr(sampler, "close", None)
            if callable(closer):
                closer()
    return summarise(space, threshold, tally, time.perf_counter() - started)


def summarise(space: TaskSpace, threshold: FloatArray, tally: Tally, seconds: float) -> dict[str, Any]:
    final = tally.per_task if tally.per_task is not None else np.zeros(space.size)
    counted = space.counted
    return {
        "final": tally.curve[-1] if tally.curve else 0.0,
        "auc": float(np.mean(tally.curve)) if tally.curve else 0.0,
        "solved_tasks": int((final >= threshold)[counted].sum()),
        "impossible_share": tally.impossible / max(tally.episodes, 1),
        "solved_share": tally.solved / max(tally.episodes, 1),
        "presolved_share": tally.presolved / max(tally.episodes, 1),
        "curve": tally.curve,
        "seconds": seconds,
    }


METRICS = ("final", "auc", "solved_tasks", "impossible_share", "solved_share", "presolved_share", "seconds")


def aggregate(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean, population std and standard error of the mean of each metric across seeds."""
    out: dict[str, dict[str, float]] = {}
    for metric in METRICS:
        values = [float(run[metric]) for run in runs]
        std = statistics.pstdev(values) if len(values) > 1 else 0.0
        sem = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
        out[metric] = {"mean": statistics.fmean(values), "std": std, "sem": sem}
    curves = np.array([run["curve"] for run in runs], dtype=np.float64)
    out["curve"] = {"mean": curves.mean(axis=0).tolist()}  # type: ignore[dict-item]
    return out


def run_job(job: tuple[Benchmark, Row, int]) -> tuple[str, str, int, dict[str, Any]]:
    bench, row, seed = job
    return bench.name, row.name, seed, run_one(bench, row, seed)
