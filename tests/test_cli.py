"""The ``curriculum-redis`` command line against a real Redis: every command, its --help, bad arguments
(exit 2), and failures at run time (exit 1) reported on one line, without a traceback or a password."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis

from curriculum_redis import BucketedTaskGenerator, Curriculum, CurriculumConfig, LearningProgressConfig, admin, reader
from curriculum_redis.algorithms import DEFAULT_ALGORITHM, find_algorithm
from curriculum_redis.cli import URL_ENV, main
from curriculum_redis.demo.student import SimulatedStudent, student_task_generator

pytestmark = pytest.mark.redis

COMMANDS = ["demo", "inspect", "stats", "labels", "watch", "plot", "namespaces", "drop", "snapshot", "export", "import"]
EPISODES = 3000
TASKS = 16
UNREACHABLE = "redis://user:secret@127.0.0.1:1"
GENERATOR = BucketedTaskGenerator({}, {"level": list(range(6))}, label="grid")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "configs"


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No URL from the environment, wide tables, and any file a command writes lands in tmp_path."""
    monkeypatch.delenv(URL_ENV, raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def trained(redis_url: str) -> str:
    """Namespace ``cli`` on an empty server, after a student played EPISODES episodes through it."""
    config = CurriculumConfig(
        task_generator=student_task_generator(),
        algorithm=LearningProgressConfig(num_active_tasks=TASKS),
        redis_url=redis_url,
        namespace="cli",
    )
    student = SimulatedStudent(seed=0, params=None)
    with Curriculum(config) as curriculum:
        for _ in range(EPISODES):
            task = curriculum.get_task()
            curriculum.update_task_performance(task.task_id, student.episode(task.env_cfg))
    return redis_url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def exit_code(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The exit code whether main returns it or argparse raises SystemExit."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- reading a namespace


def test_inspect_lists_tasks_by_probability(trained: str, capsys: pytest.CaptureFixture[str]) -> None:
    rows = run_json(capsys, "--redis-url", trained, "--namespace", "cli", "inspect")
    assert len(rows) == TASKS
    probabilities = [row["probability"] for row in rows]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0)
    assert {"task_id", "label", "completions", "lp", "p_true", "success_ema", "mean_score"} <= set(rows[0])

    code, out, _ = run(capsys, "--redis-url", trained, "--namespace", "cli", "inspect")
    assert code == 0
    assert str(rows[0]["task_id"]) in out
    assert rows[0]["label"] in out


def test_inspect_sorts_filters_and_limits(trained: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = ("--redis-url", trained, "--namespace", "cli", "inspect")
    by_completions = run_json(capsys, *base, "--sort", "completions")
    counts = [row["completions"] for row in by_completions]
    assert counts == sorted(counts, reverse=True)
    by_lp = run_json(capsys, *base, "--sort", "lp", "--limit", "3")
    assert len(by_lp) == 3
    assert by_lp[0]["lp"] == max(row["lp"] for row in by_completions)
    learnable = run_json(capsys, *base, "--label", "kind=learnable")
    assert learnable and all("kind=learnable" in row["label"] for row in learnable)
    assert run_json(capsys, *base, "--label", "no such label") == []


def test_options_may_follow_the_command(trained: str, capsys: pytest.CaptureFixture[str]) -> None:
    rows = run_json(capsys, "inspect", "--redis-url", trained, "--namespace", "cli", "--limit", "2")
    assert len(rows) == 2


def test_url_comes_from_the_environment(
    trained: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(URL_ENV, trained)
    stats = run_json(capsys, "--namespace", "cli", "stats")
    assert stats["num_completed"] == EPISODES


def test_stats_match_the_curriculum(trained: str, capsys: pytest.CaptureFixture[str]) -> None:
    stats = run_json(capsys, "--redis-url", trained, "--namespace", "cli", "stats")
    assert stats["num_active_tasks"] == TASKS
    assert stats["num_scheduled"] == EPISODES
    samples = [value for name, value in stats.items() if name.endswith("/samples")]
    assert sum(samples) == EPISODES
    code, out, _ = run(capsys, "--redis-url", trained, "--namespace", "cli", "stats")
    assert code == 0
    assert "num_completed" in out and "gini/sampling_probability" in out


def test_labels_table_and_json(trained: str, capsys: pytest.CaptureFixture[str]) -> None:
    table = run_json(capsys, "--redis-url", trained, "--namespace", "cli", "labels")
    assert len(table) >= 4  # the labels of the tasks drawn so far, out of 8
    assert all(label.startswith("student:kind=") for label in table)
    assert sum(row["samples"] for row in table.values()) == EPISODES
    assert all(row["success_rate"] == 0.0 for label, row in table.items() if "impossible" in label)
    code, out, _ = run(capsys, "--redis-url", trained, "--namespace", "cli", "labels")
    assert code == 0
    assert all(label in out for label in table)


def test_namespaces_lists_the_trained_namespace(trained: str, capsys: pytest.CaptureFixture[str]) -> None:
    infos = run_json(capsys, "--redis-url", trained, "namespaces")
    assert [(info["namespace"], info["tasks"]) for info in infos] == [("cli", TASKS)]
    code, out, _ = run(capsys, "--redis-url", trained, "namespaces")
    assert code == 0 and "cli" in out


def registered_algorithms() -> list[str]:
    """Every algorithm the library knows, the test-only extra one included."""
    import extra_algorithm.constant  # noqa: F401  (registers itself on import)

    from curriculum_redis.algorithms import registry

    return sorted(registry())


def algorithm_config(name: str, redis_url: str, namespace: str) -> CurriculumConfig:
    """A small config for ``name``: its defaults over a few tasks, else (stages, say) its example file."""
    try:
        return CurriculumConfig.model_validate(
            {
                "task_generator": GENERATOR.model_dump(),
                "algorithm": {"algorithm": name, "num_active_tasks": TASKS},
                "redis_url": redis_url,
                "namespace": namespace,
            }
        )
    except ValueError:
        example = EXAMPLES / f"{name}.json"
        return CurriculumConfig.from_file(example, redis_url=redis_url, namespace=namespace)


@pytest.mark.parametrize("name", registered_algorithms())
def test_every_read_command_on_every_algorithm(
    name: str, redis_url: str, redis_client: redis.Redis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace = f"every-{name}"
    with Curriculum(algorithm_config(name, redis_url, namespace)) as curriculum:
        for i in range(300):
            task = curriculum.get_task()
            curriculum.update_task_performance(task.task_id, (i % 7) / 6)
    at = ("--redis-url", redis_url, "--namespace", namespace)
    kinds = admin.namespace_kinds(redis_client, namespace)
    assert "curriculum" in kinds
    pool = find_algorithm(name).shape == "pool"
    stats = run_json(capsys, *at, "stats")
    assert stats["num_completed" if pool else "stage/recorded_episodes"] == 300
    assert run_json(capsys, *at, "labels")
    rows = run_json(capsys, *at, "inspect")
    assert {row["algorithm"] for row in rows} == ({name} if pool else set())  # stages keep no task pool
    if pool:
        score = reader.task_columns(name)[0]
        code, out, err = run(capsys, *at, "inspect", "--sort", score, "--limit", "3")
        assert code == 0 and score in out, err
    for command in ("stats", "labels", "inspect"):
        code, out, err = run(capsys, *at, command)
        assert code == 0 and out and not err, (command, err)
    code, out, err = run(capsys, *at, "export", str(tmp_path / "out.crx"))
    assert code == 0 and (tmp_path / "out.crx").stat().st_size > 0, err
    code, out, err = run(capsys, *at, "import", str(tmp_path / "out.crx"), "--replace")
    assert code == 0 and "replaced" in out, err
    assert run_json(capsys, *at, "stats") == stats
    infos = {info["namespace"]: info for info in run_json(capsys, "--redis-url", redis_url, "namespaces")}
    assert infos[namespace]["kind"] == name
    code, out, err = run(capsys, *at, "stage")
    if "stage" in kinds:
        assert code == 0 and "stage 0" in out, err
        assert infos[namespace]["stage"] == 0
    else:
        assert (code, out) == (1, "")
        assert err == (
            f"error: namespace {namespace!r} is not a stage curriculum: "
            f"see it with `curriculum-redis --namespace {namespace} stats`\n"
        )


# --------------------------------------------------------------------------- lifecycle


def test_snapshot_writes_an_rdb_file(trained: str, capsys: pytest.CaptureFixture[str]) -> None:
    info = run_json(capsys, "--redis-url", trained, "snapshot")
    assert Path(info["path"]).name == "dump.rdb"
    assert info["size_bytes"] > 0
    code, out, _ = run(capsys, "--redis-url", trained, "snapshot", "--timeout", "30")
    assert code == 0 and "dump.rdb" in out


def test_export_import_and_drop(trained: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cli.crx"
    code, out, err = run(capsys, "--redis-url", trained, "--namespace", "cli", "export", str(path))
    assert code == 0, err
    assert path.exists() and f"{TASKS} tasks" in out

    code, out, err = run(capsys, "--redis-url", trained, "--namespace", "copy", "import", str(path))
    assert code == 0, err
    original = run_json(capsys, "--redis-url", trained, "--namespace", "cli", "inspect", "--sort", "completions")
    copied = run_json(capsys, "--redis-url", trained, "--namespace", "copy", "inspect", "--sort", "completions")
    assert [(r["task_id"], r["completions"], r["lp"]) for r in copied] == [
        (r["task_id"], r["completions"], r["lp"]) for r in original
    ]

    code, _, err = run(capsys, "--redis-url", trained, "--namespace", "copy", "import", str(path))
    assert code == 1 and err == "error: namespace 'copy' already exists: pass --replace to overwrite it\n"
    code, _, err = run(capsys, "--redis-url", trained, "--namespace", "copy", "import", str(path), "--replace")
    assert code == 0, err

    code, _, err = run(capsys, "--redis-url", trained, "drop", "copy")
    assert code == 2 and "--yes" in err
    code, out, err = run(capsys, "--redis-url", trained, "drop", "copy", "--yes")
    assert code == 0, err
    assert [info["namespace"] for info in run_json(capsys, "--redis-url", trained, "namespaces")] == ["cli"]


def test_import_of_a_corrupt_file_fails_cleanly(
    trained: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.crx"
    path.write_bytes(b"not an export at all")
    code, _, err = run(capsys, "--redis-url", trained, "--namespace", "x", "import", str(path))
    assert code == 1
    assert err.startswith("error: ") and "Traceback" not in err
    code, _, err = run(capsys, "--redis-url", trained, "--namespace", "x", "import", str(tmp_path / "missing"))
    assert code == 1 and err.startswith("error: ")


# --------------------------------------------------------------------------- demo


@pytest.mark.slow  # an end-to-end demo run, four times
def test_demo_on_a_given_server(redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--redis-url", redis_url, "demo", "--episodes", "4000", "--workers", "2", "--tasks", "16"]
    argv += ["--out", str(tmp_path), "--no-progress", "--json"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    report = json.loads(out[out.index('{\n  "algorithm"') :])
    assert report["episodes_recorded"] == 4000 and report["algorithm"] == DEFAULT_ALGORITHM
    assert report["redis"] == {
        "url": redis_url,
        "namespace": "demo",
        "embedded": False,
        "data_dir": None,
        "server_binary": None,
        "rdb_path": None,
        "rdb_bytes": None,
    }
    assert (tmp_path / "report.json").exists()
    assert redis.Redis.from_url(redis_url).exists("{cr:demo}:meta")

    code, _, err = run(capsys, *argv)
    assert code == 1 and "--replace" in err
    code, _, err = run(capsys, *argv, "--replace", "--namespace", "demo")
    assert code == 0, err
    code, out, err = run(capsys, *argv, "--replace", "--algorithm", "learning_progress", "--lp-noise-correction", "1")
    assert code == 0, err
    assert json.loads(out[out.index('{\n  "algorithm"') :])["algorithm"] == "learning_progress"
    code, _, err = run(capsys, *argv, "--replace", "--lp-noise-correction", "1")
    assert code != 0 and "learning_progress only" in err


def test_ctrl_c_in_the_demo_exits_130(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from curriculum_redis.demo import run as demo_run

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_run, "watch", interrupted)
    code, _, err = run(
        capsys, "demo", "--episodes", "1000000", "--workers", "1", "--out", str(tmp_path), "--no-progress"
    )
    assert code == 130
    assert "interrupted" in err and "Traceback" not in err


def test_demo_help_shows_the_demo_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI does not import the demo to build its parser, so its help repeats two defaults: keep them equal."""
    from curriculum_redis import cli, demo

    assert f"{demo.DEFAULT_EPISODES:,}" == cli.DEMO_EPISODES
    assert float(cli.DEMO_PACE) == demo.PACE
    assert cli.DEMO_ALGORITHM == DEFAULT_ALGORITHM
    code, out, _ = exit_code(capsys, "demo", "--help")
    assert code == 0 and f"default: {demo.DEFAULT_EPISODES:,}" in out


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert f"curriculum-redis {command}" in capsys.readouterr().out


def test_top_level_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(command in out for command in COMMANDS)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["no-such-command"],
        ["inspect", "--sort", "bogus"],
        ["inspect", "--limit", "0"],
        ["demo", "--episodes", "0"],
        ["demo", "--workers", "many"],
        ["demo", "--learning-rate", "-1"],
        ["demo", "--namespace", "a{b}c"],
        ["demo", "--redis-url", "http://localhost"],
        ["import"],
        ["import", "x", "--on-mismatch", "sometimes"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = exit_code(capsys, *argv)
    assert code == 2
    assert "Traceback" not in err


def test_missing_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "stats")
    assert code == 2
    assert err == f"error: no Redis server given: pass --redis-url or set ${URL_ENV}\n"


def test_url_with_another_scheme_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--redis-url", "http://user:secret@example.com", "namespaces")
    assert code == 2
    assert "secret" not in err and err.startswith("error: ")


@pytest.mark.parametrize(
    "argv",
    [
        ["stats"],
        ["labels"],
        ["inspect"],
        ["namespaces"],
        ["snapshot"],
        ["drop", "x", "--yes"],
        ["export", "out.crx"],
        ["demo", "--episodes", "10", "--workers", "1", "--no-progress"],
    ],
)
def test_unreachable_server_is_one_clean_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = exit_code(capsys, "--redis-url", UNREACHABLE, *argv)
    assert code == 1
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "Traceback" not in err + out
    assert "secret" not in err + out
    assert "127.0.0.1:1" in err


def test_missing_namespace_is_a_runtime_error(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--redis-url", redis_url, "--namespace", "nothing-here", "stats")
    assert code == 1
    assert "nothing-here" in err and "does not exist" in err


def test_stage_shows_and_resets_a_stage_curriculum(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from curriculum_redis import StageConfig, StageCurriculum, StageCurriculumConfig

    config = StageCurriculumConfig(
        stages=[
            StageConfig(name="easy", env_cfg={"level": 1}, stop_condition="episodes>=3"),
            StageConfig(name="hard", env_cfg={"level": 2}),
        ]
    )
    with StageCurriculum(config, redis_url, namespace="stages") as curriculum:
        for _ in range(3):
            curriculum.record_episode(0, True)
    assert main(["--redis-url", redis_url, "--namespace", "stages", "stage"]) == 0
    out = capsys.readouterr().out
    assert "stage 1" in out and "hard" in out and "episodes>=3" in out
    assert main(["--redis-url", redis_url, "--namespace", "stages", "stage", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["state"]["index"] == 1 and data["stats"]["stage/easy/episodes"] == 3
    assert main(["--redis-url", redis_url, "--namespace", "stages", "stage", "--reset-to", "0"]) == 2
    assert "--yes" in capsys.readouterr().err
    assert main(["--redis-url", redis_url, "--namespace", "stages", "stage", "--reset-to", "0", "--yes", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"]["index"] == 0
    assert main(["--redis-url", redis_url, "--namespace", "nothing-here", "stage"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_inspect_shows_the_namespaces_own_algorithm_fields(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from curriculum_redis import BucketedTaskGenerator, Curriculum, CurriculumConfig, PrioritizedReplayConfig

    config = CurriculumConfig(
        task_generator=BucketedTaskGenerator({}, {"level": [1, 2]}, label="grid"),
        algorithm=PrioritizedReplayConfig(num_active_tasks=4),
        redis_url=redis_url,
        namespace="plr",
    )
    with Curriculum(config) as curriculum:
        for _ in range(20):
            curriculum.update_task_performance(curriculum.get_task().task_id, 0.3)
    assert main(["--redis-url", redis_url, "--namespace", "plr", "inspect", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(row["algorithm"] == "prioritized_replay" and "score" in row and "lp" not in row for row in rows)
    assert main(["--redis-url", redis_url, "--namespace", "plr", "inspect"]) == 0
    assert "score" in capsys.readouterr().out
    assert main(["--redis-url", redis_url, "--namespace", "plr", "inspect", "--sort", "lp"]) == 2
    assert "no such field" in capsys.readouterr().err


# --------------------------------------------------------------------------- consistency (issue 11)


@pytest.fixture
def stages(redis_url: str) -> str:
    """Namespace ``stages``: a stage curriculum of 3 stages, moved to stage 1 after 3 episodes."""
    from curriculum_redis import StageConfig, StageCurriculum, StageCurriculumConfig

    config = StageCurriculumConfig(
        stages=[
            StageConfig(name="easy", env_cfg={"level": 1}, stop_condition="episodes>=3"),
            StageConfig(name="mid", env_cfg={"level": 2}),
            StageConfig(name="hard", env_cfg={"level": 3}),
        ]
    )
    with StageCurriculum(config, redis_url, namespace="stages") as curriculum:
        for _ in range(4):
            curriculum.record_episode(curriculum.current_stage().index, True)
    return redis_url


def test_stage_index_error_names_the_flag(stages: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--redis-url", stages, "--namespace", "stages", "stage", "--reset-to", "5", "--yes")
    assert code == 2
    assert err == "error: --reset-to 5 is not a stage (the namespace has stages 0..2)\n"


@pytest.mark.parametrize("argv", [["drop", "stages"], ["--namespace", "stages", "stage", "--reset-to", "0"]])
def test_missing_yes_is_a_usage_error_everywhere(
    stages: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--redis-url", stages, *argv)
    assert code == 2 and "--yes" in err and err.count("\n") == 1
    assert run_json(capsys, "--redis-url", stages, "namespaces")[0]["stage"] == 1  # nothing was done


@pytest.mark.parametrize(
    "argv",
    [
        ["drop", "ghost", "--yes"],
        ["--namespace", "ghost", "stats"],
        ["--namespace", "ghost", "inspect"],
        ["--namespace", "ghost", "labels"],
        ["--namespace", "ghost", "stage"],
        ["--namespace", "ghost", "export", "ghost.crx"],
    ],
)
def test_a_missing_namespace_is_an_error_with_a_hint(
    redis_url: str, argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--redis-url", redis_url, *argv)
    assert code == 1 and out == ""
    assert err == (
        f"error: namespace 'ghost' does not exist on {redis_url}: "
        "run `curriculum-redis namespaces` to list the namespaces there\n"
    )
    assert not (tmp_path / "ghost.crx").exists()


def test_stage_of_a_task_pool_points_to_stats_and_stats_of_stages_reads_them(
    stages: str, trained: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--redis-url", stages, "--namespace", "cli", "stage")
    assert code == 1 and "is not a stage curriculum" in err and "--namespace cli stats`" in err
    stats = run_json(capsys, "--redis-url", stages, "--namespace", "stages", "stats")
    assert stats == run_json(capsys, "--redis-url", stages, "--namespace", "stages", "stage")["stats"]


def test_stats_of_a_stage_namespace_without_meta_points_to_stage(
    stages: str, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stage namespace whose meta holds no hyperparameters is found and read by ``stage``; the pool
    commands point there."""
    redis_client.delete("{cr:stages}:meta")
    code, _, err = run(capsys, "--redis-url", stages, "--namespace", "stages", "stats")
    assert code == 1 and "is a stage curriculum" in err and "--namespace stages stage`" in err
    assert run_json(capsys, "--redis-url", stages, "--namespace", "stages", "stage")["state"]["index"] == 1
    assert run_json(capsys, "--redis-url", stages, "namespaces")[0]["kind"] == "stage"


@pytest.mark.parametrize("argv", [["--namespace", "", "stats"], ["stats", "--namespace", ""], ["demo", "--namespace="]])
def test_empty_namespace_is_a_usage_error(redis_url: str, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = exit_code(capsys, "--redis-url", redis_url, *argv)
    assert code == 2 and "--namespace: must not be empty" in err and out == ""


def test_namespaces_describes_a_stage_namespace_as_stage_does(
    stages: str, trained: str, capsys: pytest.CaptureFixture[str]
) -> None:
    infos = {info["namespace"]: info for info in run_json(capsys, "--redis-url", stages, "namespaces")}
    stage = run_json(capsys, "--redis-url", stages, "--namespace", "stages", "stage")
    assert infos["stages"]["kind"] == "sequential"
    assert infos["stages"]["stage"] == stage["state"]["index"] == 1
    assert infos["stages"]["num_stages"] == 3
    assert infos["stages"]["episodes"] == stage["stats"]["stage/recorded_episodes"] == 4
    stats = run_json(capsys, "--redis-url", stages, "--namespace", "cli", "stats")
    assert infos["cli"]["kind"] == "learning_progress"
    assert (infos["cli"]["tasks"], infos["cli"]["episodes"]) == (stats["num_active_tasks"], stats["num_completed"])
    code, out, _ = run(capsys, "--redis-url", stages, "namespaces")
    assert code == 0
    row = next(line.split() for line in out.splitlines() if line.strip().startswith("stages"))
    assert row == ["stages", "sequential", "-", "1", "of", "3", "4", "2"]


@pytest.mark.parametrize(
    "argv",
    [
        ["namespaces"],
        ["--namespace", "cli", "stats"],
        ["--namespace", "cli", "inspect"],
        ["--namespace", "stages", "stage"],
        ["drop", "cli", "--yes"],
        ["snapshot"],
        ["--namespace", "cli", "export", "x.crx"],
    ],
)
def test_a_wrong_password_reads_as_the_library_says_it(
    redis_url: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from curriculum_redis import StageConfig, StageCurriculum, StageCurriculumConfig
    from curriculum_redis.errors import StoreError
    from curriculum_redis.store.redis import RedisStore

    bad = redis_url.replace("redis://", "redis://nobody:hunter2@")
    with pytest.raises(StoreError) as library:
        RedisStore.from_url(bad, "cli").export_state()
    with pytest.raises(StoreError) as stage_library:
        StageCurriculum(StageCurriculumConfig(stages=[StageConfig(name="a", env_cfg={})]), bad, "stages").state()
    assert str(stage_library.value) == str(library.value)
    assert "rejected the credentials" in str(library.value)
    code, out, err = run(capsys, "--redis-url", bad, *argv)
    assert code == 1 and out == ""
    assert err == f"error: {library.value}\n"
    assert "hunter2" not in err and "cannot reach" not in err


def test_version_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.metadata

    code, out, _ = exit_code(capsys, "--version")
    assert code == 0
    assert out == f"curriculum-redis {importlib.metadata.version('curriculum_redis')}\n"


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:99999",
        "redis://[::1:6379",
        "redis://localhost:port",
        "redis://user:secret@[::1:6379/0",
        "ftp://localhost",
        "garbage",
        "unix://",
        "redis://localhost:6379/0?socket_timeout=soon",
    ],
)
@pytest.mark.parametrize("command", [["namespaces"], ["stats"], ["demo", "--episodes", "10", "--no-progress"]])
def test_no_traceback_for_any_url(url: str, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = exit_code(capsys, "--redis-url", url, *command)
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "Traceback" not in out + err and "secret" not in err
