"""Tasks with coordinates: under frontier, never-solved tasks next to solved ones (in task space) are the frontier.

Nearness by hand, the distribution's parts with and without positions (unchanged without them, bit for
bit), where positions come from (a generator's ``coordinates``: dot paths of the env config) and every bad
path refused with its name, and the whole path through ``Curriculum`` in memory and on a real Redis
server, where a second worker derives the same positions from the same generator."""

from __future__ import annotations

import json
import math
import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from workers import train_near_corner

from curriculum_redis import (
    BucketedTaskGenerator,
    BufferConfig,
    Curriculum,
    CurriculumConfig,
    LearningProgressConfig,
    SamplerConfig,
    SingleTaskGenerator,
    Span,
    TaskGeneratorSet,
)
from curriculum_redis.algorithms.frontier import NEIGHBOUR_POOL_LIMIT, FrontierConfig, frontier_parts, nearness
from curriculum_redis.cli import main
from curriculum_redis.config import reconcile_hypers
from curriculum_redis.errors import ConfigError, HyperparameterMismatchError
from curriculum_redis.tasks import Task, task_position

LOCATED = FrontierConfig()


# ------------------------------------------------------------------------------------------ nearness


def test_nearness_by_hand() -> None:
    positions = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 2.0], [0.0, 3.0], [1.0, 1.0], [5.0, 5.0]])
    solved = np.array([True, False, False, False, False, False])
    zero = ~solved
    near = nearness(positions, solved, zero, LOCATED)
    # distances 1, 2, 3, sqrt(2), sqrt(50): 1 within one neighbour distance, then e^(-3 * excess)
    expected = [1.0, 1.0, math.exp(-3.0), math.exp(-6.0), math.exp(-3.0 * (math.sqrt(2) - 1)),
                math.exp(-3.0 * (math.sqrt(50) - 1))]  # fmt: skip
    assert near == pytest.approx(expected, rel=1e-12)
    wider = nearness(positions, solved, zero, FrontierConfig(neighbour_distance=2.0))
    assert wider[2] == 1.0 and wider[3] == pytest.approx(math.exp(-1.5))
    gentle = nearness(positions, solved, zero, FrontierConfig(neighbour_decay=1.0))
    assert gentle[2] == pytest.approx(math.exp(-1.0))


def test_nearness_is_one_until_something_is_solved_and_for_solved_tasks() -> None:
    positions = np.arange(6, dtype=np.float64).reshape(6, 1)
    nothing = np.zeros(6, dtype=bool)
    assert nearness(positions, nothing, ~nothing, LOCATED).tolist() == [1.0] * 6
    solved = np.array([False, False, False, False, False, True])
    near = nearness(positions, solved, ~solved, LOCATED)
    assert near[5] == 1.0 and near[4] == 1.0 and near[0] == pytest.approx(math.exp(-12.0))  # 4 beyond


def test_nearness_in_chunks_matches_one_block() -> None:
    rng = np.random.default_rng(3)
    positions = rng.uniform(0, 100, size=(5000, 2))
    solved = rng.random(5000) < 0.5
    near = nearness(positions, solved, ~solved, LOCATED)  # 2,500 x 2,500 pairs: chunked
    points, targets = positions[~solved], positions[solved]
    closest = np.sqrt(((points[:, None, :] - targets[None, :, :]) ** 2).sum(-1)).min(1)
    # the matrix product's rounding: about 1e-12 of |p|^2 on the squared distance
    assert near[~solved] == pytest.approx(np.exp(-3.0 * np.maximum(0.0, closest - 1.0)), rel=1e-6, abs=1e-12)


# ------------------------------------------------------------------------------------------ the parts


def line_pool(n: int = 10, solved: int = 3) -> dict[str, Any]:
    """Tasks on a line at 0..n-1; the first ``solved`` are won often (the last of them solved lately, after
    failures: a discovery, which opens the retry part), the rest never won in 4 tries."""
    wins = np.where(np.arange(n) < solved, 8.0, 0.0)
    wins[solved - 1] = 3.0
    return {
        "completions": np.where(np.arange(n) < solved, 10.0, 4.0),
        "last_episode": np.full(n, 50.0),
        "labels": np.arange(n),  # a label each: labels alone say nothing of who is close
        "fast": np.where(wins > 0, 0.8, 0.0),
        "slow": np.where(wins > 0, 0.7, 0.0),
        "score": np.where(wins > 0, 0.05, 0.0),
        "wins": wins,
        "clock": 100,
    }


def parts_of(cfg: FrontierConfig, positions: np.ndarray | None, **pool: Any) -> Any:
    p = {**line_pool(), **pool}
    return frontier_parts(p["completions"], p["last_episode"], p["labels"], p["fast"], p["slow"], p["score"],
                          p["wins"], p["clock"], cfg, positions)  # fmt: skip


def test_without_positions_the_distribution_is_unchanged_bit_for_bit() -> None:
    p = line_pool()
    before = frontier_parts(p["completions"], p["last_episode"], p["labels"], p["fast"], p["slow"], p["score"],
                            p["wins"], p["clock"], FrontierConfig())  # fmt: skip
    assert np.array_equal(parts_of(FrontierConfig(), None).probabilities(), before.probabilities())
    located = parts_of(FrontierConfig(), np.arange(10, dtype=np.float64).reshape(10, 1))
    assert not np.array_equal(located.probabilities(), before.probabilities())


def test_the_never_solved_task_next_to_solved_ones_takes_what_far_ones_lose() -> None:
    positions = np.arange(10, dtype=np.float64).reshape(10, 1)
    plain = parts_of(FrontierConfig(), None)
    located = parts_of(LOCATED, positions)
    flat, probs = plain.probabilities(), located.probabilities()
    assert probs.sum() == pytest.approx(1.0) and np.all(probs >= 0)
    assert flat[3] == pytest.approx(flat[9])  # without coordinates: never-solved tasks are alike
    assert probs[3] > 5 * probs[5] and probs[3] > 3 * flat[3]  # the next cell is the frontier
    assert probs[9] < flat[9] / 2  # the farthest loses its retry and its uniform share ...
    assert located.retry[9] < 1e-6 * located.retry[3] and located.uniform[9] > 0  # ... but for a trace
    assert located.rank[9] / located.rank[0] == pytest.approx(plain.rank[9] / plain.rank[0])  # ranks unchanged
    assert float(located.rank.sum() + located.retry.sum() + located.uniform.sum()) == pytest.approx(1.0)


def test_only_far_never_solved_tasks_left_means_little_retry() -> None:
    # cells 0..5 solved (5 lately); the never-solved ones lie at 6..9, or at 16..19, ten steps out
    wins = np.where(np.arange(10) < 6, 8.0, 0.0)
    wins[5] = 3.0
    pool = {"wins": wins, "fast": np.where(wins > 0, 0.8, 0.0), "slow": np.where(wins > 0, 0.7, 0.0),
            "completions": np.where(wins > 0, 10.0, 4.0)}  # fmt: skip
    far = np.array([0, 1, 2, 3, 4, 5, 16, 17, 18, 19], dtype=np.float64).reshape(10, 1)
    near_parts = parts_of(LOCATED, np.arange(10, dtype=np.float64).reshape(10, 1), **pool)
    far_parts = parts_of(LOCATED, far, **pool)
    assert near_parts.retry.sum() > 0.5  # the discovery opened the retry part: all of it on the frontier
    assert far_parts.retry.sum() < near_parts.retry.sum() * 1e-4


def task(cfg: dict[str, Any]) -> Task:
    return Task(7, "t", cfg)


def test_task_position_reads_dot_paths_numbers_and_lists_in_order() -> None:
    assert task_position(task({"start": {"row": 2, "col": 5}}), ("start.row", "start.col")) == (2.0, 5.0)
    assert task_position(task({"at": [1, 2.5], "size": 9}), ("size", "at")) == (9.0, 1.0, 2.5)
    assert task_position(task({"x": np.int64(3)}), ("x",)) == (3.0,)


@pytest.mark.parametrize(
    ("cfg", "keys", "message"),
    [
        ({"start": {"row": 1}}, ("start.col",), r"coordinate 'start.col' is not in task 7's env_cfg"),
        ({"start": 3}, ("start.row",), r"'start.row' is not in task 7"),
        ({"x": "far"}, ("x",), r"'x' of task 7 must hold a number or a list of numbers, got 'far'"),
        ({"x": True}, ("x",), r"must hold a number"),
        ({"x": [1, None]}, ("x",), r"must hold a number"),
        ({"x": float("nan")}, ("x",), r"'x' of task 7 is not finite"),
    ],
)
def test_bad_coordinates_are_refused_by_name(cfg: dict[str, Any], keys: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        task_position(task(cfg), keys)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"neighbour_distance": 0.0}, "greater than 0"),
        ({"neighbour_decay": -1.0}, "greater than 0"),
        ({"neighbour_decay": float("inf")}, "finite"),
    ],
)
def test_bad_neighbour_settings_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FrontierConfig(**data)


def grid(n: int = 5, coordinates: tuple[str, ...] = ("start.row", "start.col")) -> BucketedTaskGenerator:
    cells = [{"row": r, "col": c} for r in range(n) for c in range(n)]
    return BucketedTaskGenerator(buckets={"start": cells}, label="grid", finite=True, label_format="{start[row]}",
                                 coordinates=coordinates)  # fmt: skip


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: grid(coordinates=("a..b",)), "coordinate 'a..b' is not a dot path"),
        (lambda: grid(coordinates=("",)), "is not a dot path"),
        (lambda: grid(coordinates=("start.row", "start.row")), "coordinates repeat a path"),
        (lambda: grid(coordinates=("start.x",)), r"coordinate 'start.x' is not in task 1's env_cfg"),
        (lambda: BucketedTaskGenerator(buckets={"x": ["a", "b"]}, coordinates=("x",)), "must hold a number"),
        (lambda: SingleTaskGenerator({"level": 3}, coordinates=("size",)), "'size' is not in task 0's"),
    ],
)
def test_coordinates_that_name_nothing_in_the_tasks_are_refused_when_the_generator_is_built(
    make: Any, message: str
) -> None:
    with pytest.raises((ValidationError, ConfigError), match=message):
        make()


def test_tasks_carry_their_position_and_generators_dump_as_before_without_coordinates() -> None:
    gen = grid()
    assert gen.get_task(7).position == (1.0, 1.0) and gen.get_task(7).env_cfg == {"start": {"row": 1, "col": 1}}
    assert grid(coordinates=()).get_task(7).position is None
    assert "coordinates" not in grid(coordinates=()).model_dump()
    assert "coordinates" not in grid(coordinates=()).model_dump_json()  # JSON: a list, compared as the default
    assert "coordinates" not in SingleTaskGenerator().model_dump()
    assert "coordinates" not in TaskGeneratorSet([SingleTaskGenerator()]).model_dump()
    again = BucketedTaskGenerator.model_validate_json(gen.model_dump_json())
    assert again == gen and again.get_task(7).position == (1.0, 1.0)
    # a set: each child's coordinates, or the set's own for every child
    children = TaskGeneratorSet([SingleTaskGenerator({"at": [0, 2]}, finite=True, coordinates=("at",)),
                                 SingleTaskGenerator({"at": [4, 1]}, finite=True, coordinates=("at",))])  # fmt: skip
    assert [children.get_task(i).position for i in (1, 2)] == [(0.0, 2.0), (4.0, 1.0)]
    whole = TaskGeneratorSet([SingleTaskGenerator({"at": [0, 2]}, finite=True)], coordinates=("at",))
    assert whole.get_task(1).position == (0.0, 2.0)
    endless = BucketedTaskGenerator(buckets={"x": Span(0.0, 1.0)}, coordinates=("x",))
    assert endless.get_task(12).position == (endless.get_task(12).env_cfg["x"],)


def test_a_pool_too_large_for_exact_nearness_is_refused_with_coordinates_only() -> None:
    big = FrontierConfig(num_active_tasks=NEIGHBOUR_POOL_LIMIT + 1)
    with pytest.raises(ValidationError, match=r"tasks with coordinates need num_active_tasks <= 8192"):
        CurriculumConfig(task_generator=grid(), algorithm=big)
    CurriculumConfig(task_generator=grid(coordinates=()), algorithm=big)  # no coordinates: no limit
    CurriculumConfig(task_generator=grid(), algorithm=LearningProgressConfig(num_active_tasks=NEIGHBOUR_POOL_LIMIT + 1))


def test_the_settings_round_trip_and_may_differ_between_workers() -> None:
    cfg = CurriculumConfig(task_generator=grid(), algorithm=FrontierConfig(neighbour_decay=2.0))
    again = CurriculumConfig.model_validate_json(cfg.model_dump_json())
    assert again.algorithm == cfg.algorithm and again.task_generator == cfg.task_generator
    other = FrontierConfig(neighbour_distance=2.0, neighbour_decay=1.0)
    assert reconcile_hypers(cfg.algorithm, other, "allow_safe", "test") == other  # sampling only
    with pytest.raises(HyperparameterMismatchError):
        reconcile_hypers(cfg.algorithm, other, "error", "test")


# ------------------------------------------------------------------------------------------ through Curriculum


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    yield None if request.param == "memory" else request.getfixturevalue("redis_url")


CORNER = ("start.row", "start.col")


def curriculum(url: str | None, namespace: str, coordinates: tuple[str, ...] = CORNER) -> Curriculum:
    return Curriculum(
        CurriculumConfig(
            redis_url=url,
            namespace=namespace,
            task_generator=grid(coordinates=coordinates),
            algorithm=FrontierConfig(),
            buffer=BufferConfig(batch_size=1),
            sampler=SamplerConfig(refresh_every_draws=10, refresh_every_s=None),
            seed=5,
        )
    )


def train_corner(c: Curriculum, draws: int = 600) -> None:
    """Only the corner cell (0, 0) and its right neighbour (0, 1) ever succeed."""
    for _ in range(draws):
        t = c.get_task()
        c.update_task_performance(t.task_id, 1.0 if (t.env_cfg["start"]["row"], t.env_cfg["start"]["col"]) in
                                  {(0, 0), (0, 1)} else 0.0)  # fmt: skip
    c.flush()
    c.refresh()


def by_cell(c: Curriculum) -> dict[tuple[int, int], float]:
    gen = c.config.generator
    out = {}
    for task_id, p in c.probabilities().items():
        start = gen.get_task(task_id).env_cfg["start"]
        out[(start["row"], start["col"])] = p
    return out


def test_a_curriculum_with_coordinates_trains_next_to_what_is_solved(store_url: str | None) -> None:
    c = curriculum(store_url, "near-corner")
    plain = curriculum(None, "plain", coordinates=())
    try:
        train_corner(c)
        train_corner(plain)
        near, flat = by_cell(c), by_cell(plain)
        assert sorted(near) == sorted(flat) == [(r, col) for r in range(5) for col in range(5)]
        frontier = near[(1, 0)] + near[(1, 1)] + near[(0, 2)]  # the never-solved cells one step from solved ones
        far = near[(4, 4)] + near[(3, 4)] + near[(4, 3)]
        assert frontier > 5 * far
        assert frontier > 2 * (flat[(1, 0)] + flat[(1, 1)] + flat[(0, 2)])
        assert far < flat[(4, 4)] + flat[(3, 4)] + flat[(4, 3)]
        snap = c._view._snapshot  # type: ignore[attr-defined]  # the positions the sampler used: each task's own
        assert snap is not None and snap.positions is not None
        gen = c.config.generator
        for task_id, row in zip(snap.task_ids.tolist(), snap.positions.tolist(), strict=True):
            start = gen.get_task(task_id).env_cfg["start"]
            assert row == [start["row"], start["col"]]
    finally:
        c.close()
        plain.close()


@pytest.mark.redis
def test_inspect_shows_the_workers_probabilities_given_the_runs_config(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = curriculum(redis_url, "near-inspect")
    try:
        train_corner(c)
        c.refresh()
        config = tmp_path / "run.json"
        config.write_text(c.config.model_dump_json())
        base = ["--redis-url", redis_url, "--namespace", "near-inspect", "inspect", "--json"]
        for extra, same in (([], False), (["--config", str(config)], True)):
            assert main([*base, *extra]) == 0
            shown = {row["task_id"]: row["probability"] for row in json.loads(capsys.readouterr().out)}
            assert shown.keys() == c.probabilities().keys()
            assert all(shown[i] == pytest.approx(p, abs=1e-12) for i, p in c.probabilities().items()) is same
    finally:
        c.close()


@pytest.mark.redis
def test_a_second_worker_derives_the_same_distribution(redis_url: str) -> None:
    first = curriculum(redis_url, "near-two")
    second = curriculum(redis_url, "near-two")
    try:
        train_corner(first)
        second.refresh()
        first.refresh()
        a, b = first.probabilities(), second.probabilities()
        assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    finally:
        first.close()
        second.close()


@pytest.mark.redis
@pytest.mark.slow
def test_three_processes_each_derive_positions_and_train_next_to_what_is_solved(redis_url: str) -> None:
    """Real processes on one Redis: each reads positions from its own generator; the shared scores say which
    starts are solved, and every process then spends its never-solved mass next to them, not far away."""
    payload = CurriculumConfig(
        task_generator=grid(6), redis_url=redis_url, namespace="near-processes", buffer=BufferConfig(batch_size=8),
        sampler=SamplerConfig(refresh_every_draws=10, refresh_every_s=None),
    ).model_dump_json()  # fmt: skip
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.starmap(train_near_corner, [(payload, 800)] * 3)
    counters = Curriculum(CurriculumConfig.model_validate_json(payload)).stats()
    assert counters["num_completed"] == 2400
    for result in results:
        mass = result["mass"]  # by distance from the corner: 0..2 solved, 3 next to them, 4..10 further out
        assert mass[3] > 3 * sum(mass[d] for d in range(7, 11)), mass
        drawn = result["drawn"]
        assert drawn[3] > sum(drawn.get(d, 0) for d in range(7, 11)), drawn


def test_an_endless_generator_with_continuous_coordinates_keeps_them_per_task() -> None:
    gen = BucketedTaskGenerator(buckets={"x": Span(0.0, 50.0)}, label="line", coordinates=("x",))
    c = Curriculum(
        CurriculumConfig(
            task_generator=gen,
            algorithm=FrontierConfig(num_active_tasks=16, give_up_after=2, min_presentations_for_eviction=1,
                                     max_evictions_per_refresh=4),
            sampler=SamplerConfig(refresh_every_draws=10, refresh_every_s=None),
            seed=1,
        )
    )  # fmt: skip
    try:
        for _ in range(800):
            t = c.get_task()
            c.update_task_performance(t.task_id, 1.0 if t.env_cfg["x"] < 10 else 0.0)
        c.flush()
        c.refresh()
        assert c.stats()["num_evicted"] > 0
        snap = c._view._snapshot  # type: ignore[attr-defined]
        assert snap is not None and snap.positions is not None
        assert snap.positions[:, 0].tolist() == [gen.get_task(i).env_cfg["x"] for i in snap.task_ids.tolist()]
    finally:
        c.close()


@pytest.mark.parametrize(
    ("generator", "message"),
    [
        (BucketedTaskGenerator(buckets={"at": [[0], [1], [2, 3]]}, label="ragged", finite=True, coordinates=("at",)),
         "tasks' coordinates differ in length"),
        (TaskGeneratorSet([SingleTaskGenerator({"at": 1}, finite=True, coordinates=("at",)),
                           SingleTaskGenerator({"at": 2}, finite=True)]),
         "some tasks have coordinates and others none"),
    ],
)  # fmt: skip
def test_tasks_placed_in_different_spaces_are_refused_at_the_first_refresh(generator: Any, message: str) -> None:
    c = Curriculum(CurriculumConfig(task_generator=generator))
    try:
        with pytest.raises(ConfigError, match=message):
            c.get_task()
    finally:
        c.close()
