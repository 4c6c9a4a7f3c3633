"""The quality suite on real environments (benchmarks/quality_envs.py): its plumbing and its exact metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("minigrid")

from benchmarks import quality_envs
from benchmarks.quality_suite.core import Row, run_one
from benchmarks.quality_suite.frozenlake import FrozenLakeBenchmark, reach_probability, start_cell, transition_tensor
from benchmarks.quality_suite.gridworld import GridBenchmark
from benchmarks.quality_suite.student import FamiliesBenchmark


def test_sealed_map_has_half_of_its_starts_cut_off() -> None:
    space = FrozenLakeBenchmark("sealed", "sealed", 10).space()
    assert space.size == 69
    assert int(space.impossible.sum()) == 35
    assert not (space.counted & space.impossible).any()
    # The library's generator enumerates exactly the suite's tasks (finite: each once), not in map order.
    assert space.generator.size == space.size
    starts = [start_cell(space.generator.get_task(t).env_cfg) for t in space.generator.task_ids()]
    assert sorted(starts) == sorted(start_cell(c) for c in space.configs) and starts != sorted(starts)
    for task_id in space.generator.task_ids():
        cfg = space.generator.get_task(task_id).env_cfg
        assert space.configs[space.key(cfg)] == cfg


def test_exact_evaluation_matches_the_greedy_policy_on_the_corridor_maze() -> None:
    bench = FrozenLakeBenchmark("corridor", "corridor", 10)
    run = bench.new_run(0)
    t, _, goal = transition_tensor(run.env)
    # The optimal policy reaches the goal from every cell of a perfect maze; the untrained greedy policy
    # (always left) from none, the goal's left-hand cell being a hole.
    best = reach_probability(t, goal, None)
    assert (best[run.cells] == 1.0).all()
    assert (run.evaluate() == 0.0).all()
    # A learner whose Q-values are 0.99 ** (distance to the goal) of the next cell succeeds everywhere.
    nxt = t.argmax(axis=2)  # deterministic map: the one successor of (action, state)
    dist = {goal: 0}
    while len(dist) < len(run.cells) + 1:
        dist.update({s: dist[int(nxt[a, s])] + 1 for s in run.cells for a in range(4)
                     if s not in dist and int(nxt[a, s]) in dist and int(nxt[a, s]) != s})
    for s in run.cells:
        run.learner.q[s] = [0.99 ** dist[int(nxt[a, s])] if int(nxt[a, s]) in dist else 0.0 for a in range(4)]
    assert (run.evaluate() == 1.0).all()


def test_oracle_trains_only_possible_unsolved_starts_next_to_solved_ones() -> None:
    bench = FrozenLakeBenchmark("sealed", "sealed", 10)
    space = bench.space()
    run = bench.new_run(0)
    rng = np.random.default_rng(0)
    solved = np.zeros(space.size, dtype=bool)
    picks = {run.oracle(rng, solved) for _ in range(200)}
    assert picks and all(not space.impossible[i] for i in picks)
    # With nothing solved, only the goal's neighbours are on the frontier.
    assert all(-2 in run.neighbours[i] for i in picks)


def test_uniform_row_spends_a_third_on_impossible_rooms_and_reports_every_metric() -> None:
    bench = GridBenchmark(episodes=90, checkpoints=3)
    result = run_one(bench, Row("uniform", "uniform"), seed=1)
    assert len(result["curve"]) == 3
    assert 0.15 < result["impossible_share"] < 0.55
    assert 0.0 <= result["final"] <= 1.0 and 0.0 <= result["solved_share"] <= 1.0


def test_oracle_masters_a_student_family_that_uniform_does_not() -> None:
    bench = FamiliesBenchmark(episodes=1500, checkpoints=2)
    oracle = run_one(bench, Row("oracle", "oracle"), seed=0)
    uniform = run_one(bench, Row("uniform", "uniform"), seed=0)
    assert oracle["impossible_share"] == 0.0
    assert oracle["solved_tasks"] >= 1 > uniform["solved_tasks"]
    # A third of the families are mastered before any training: uniform spends a third of its episodes there.
    assert 0.25 < uniform["presolved_share"] < 0.42
    assert oracle["presolved_share"] == 0.0


@pytest.mark.slow
def test_smoke_mode_runs_every_benchmark_and_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert quality_envs.main(["--smoke", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "quality_envs.json").read_text())
    rows = {row.name for row in quality_envs.standard_rows()}
    assert set(data["benchmarks"]) == {bench.name for bench in quality_envs.all_benchmarks()}
    for info in data["benchmarks"].values():
        assert set(info["rows"]) == rows
        assert info["rows"]["oracle (privileged)"]["impossible_share"]["mean"] == 0.0
    assert (tmp_path / "quality_envs.png").stat().st_size > 0
    assert "| library default |" in capsys.readouterr().out


@pytest.mark.slow
def test_quick_mode_shows_the_default_teaching_more_than_uniform_sampling_on_the_student(tmp_path: Path) -> None:
    """The suite's CI mode (2 seeds, 40% budgets, ~25 s on 2 cores): every benchmark and row, and the
    default ahead of uniform sampling where the figures are smooth (the student; FrozenLake finals are chaotic
    in the draw sequence, README "Curriculum quality"). Student runs refresh by draw count: deterministic."""
    assert quality_envs.main(["--quick", "--jobs", "2", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "quality_envs.json").read_text())
    assert data["mode"] == "quick" and set(data["benchmarks"]) == {b.name for b in quality_envs.all_benchmarks()}
    for name in ("student-families", "student-chain", "student-chain-endless"):
        rows = data["benchmarks"][name]["rows"]
        final = {row: rows[row]["final"]["mean"] for row in ("uniform (no library)", "library default")}
        assert final["library default"] > final["uniform (no library)"] + 0.15, (name, final)
        impossible = {row: rows[row]["impossible_share"]["mean"] for row in ("uniform (no library)", "library default")}
        assert impossible["library default"] < impossible["uniform (no library)"], (name, impossible)


def test_frozenlake_starts_carry_their_row_and_column_as_coordinates() -> None:
    bench = FrozenLakeBenchmark("sealed", "sealed", 10)
    space = bench.space()
    assert space.located is not None and space.located.coordinates == ("start.row", "start.col")
    assert space.generator.coordinates == ()  # the rows without coordinates stay without
    for generator in (space.generator, space.grouped, space.located):
        assert generator is not None
        for task_id in generator.task_ids():
            task = generator.get_task(task_id)
            start = task.env_cfg["start"]
            assert divmod(start["cell"], 12) == (start["row"], start["col"])
            assert task.position == ((start["row"], start["col"]) if generator is space.located else None)
    first = space.generator.get_task(1)
    assert first.label == f"frozenlake-sealed:start={start_cell(first.env_cfg)}"


def test_coordinates_meet_the_sealed_maps_target_where_labels_alone_do_not() -> None:
    """Issue target (b): more final success than uniform sampling with at most 15% of episodes on impossible
    starts (uniform spends half). Four seeds of the full 2,000-episode budget, a few seconds."""
    bench = FrozenLakeBenchmark("frozenlake-sealed", "sealed", 2000)
    rows = {row.name: row for row in quality_envs.standard_rows()}
    runs = {name: [run_one(bench, rows[name], seed) for seed in range(4)]
            for name in ("uniform (no library)", "library default", "library default, coordinates")}  # fmt: skip
    final = {name: float(np.mean([r["final"] for r in got])) for name, got in runs.items()}
    wasted = {name: float(np.mean([r["impossible_share"] for r in got])) for name, got in runs.items()}
    assert wasted["library default, coordinates"] <= 0.15 < wasted["library default"] < wasted["uniform (no library)"]
    assert final["library default, coordinates"] > final["uniform (no library)"] + 0.2, final


def test_grouped_frozenlake_tasks_share_a_label_per_3x3_block_of_start_cells() -> None:
    bench = FrozenLakeBenchmark("corridor", "corridor", 10)
    space = bench.space()
    assert space.grouped is not None
    labels: dict[str, set[int]] = {}
    for task_id in space.grouped.task_ids():
        task = space.grouped.get_task(task_id)
        assert space.configs[space.key(task.env_cfg)] == task.env_cfg
        labels.setdefault(task.label, set()).add(start_cell(task.env_cfg))
    ncol = 12
    for cells in labels.values():  # one block each: at most 9 cells, all in the same 3x3 block
        assert len(cells) <= 9 and len({(c // ncol // 3, c % ncol // 3) for c in cells}) == 1
    assert 1 < len(labels) < space.size


def test_a_frontier_row_runs_through_the_library_with_block_labels() -> None:
    bench = FrozenLakeBenchmark("sealed", "sealed", 60, checkpoints=2)
    row = next(r for r in quality_envs.standard_rows() if r.grouped)
    result = run_one(bench, row, seed=0)
    assert 0.0 <= result["impossible_share"] <= 1.0 and len(result["curve"]) == 2


def test_the_budget_report_accounts_for_the_episodes_played_on_impossible_tasks() -> None:
    """benchmarks/budget.py: the parts' mass on impossible tasks, averaged over refreshes, is what was played."""
    from benchmarks import budget

    bench = FrozenLakeBenchmark("frozenlake-sealed", "sealed", 400)
    result = budget.measure(bench, grouped=True, seeds=2)
    assert result["refreshes"] >= 60
    assert all(0.0 <= result[part] <= 1.0 for part in budget.PARTS)
    assert 0.08 < result["uniform"] < 0.14  # the uniform quarter over 35 impossible starts of 69
    assert abs(sum(result[p] for p in budget.PARTS) - result["played"]) < 0.08
