"""The CLI's tables at 80 columns with piped output (capsys is not a terminal): ids and labels whole,
no line past 80 columns, ``stats`` grouped, one number format, redis-cli commands never wrapped."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from curriculum_redis import Curriculum, CurriculumConfig, LearningProgressConfig
from curriculum_redis.cli import URL_ENV, main
from curriculum_redis.demo.report import RedisInfo, redis_cli_commands
from curriculum_redis.demo.student import SimulatedStudent, student_task_generator
from curriculum_redis.tables import Column, fitted_table, number

pytestmark = pytest.mark.redis

WIDTH = 80
COUNT = re.compile(r"^\d{1,3}(,\d{3})*$")
FLOAT = re.compile(r"^(\d\.\d{3}|0\.0*\d{4}|\d{2}\.\d{2}|\d{3}\.\d|\d\.\d{3}e[+-]\d\d)$")


@pytest.fixture(autouse=True)
def _narrow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(URL_ENV, raising=False)
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def trained(redis_url: str) -> str:
    config = CurriculumConfig(
        task_generator=student_task_generator(),
        algorithm=LearningProgressConfig(num_active_tasks=16),
        redis_url=redis_url,
        namespace="narrow",
    )
    student = SimulatedStudent(seed=1, params=None)
    with Curriculum(config) as curriculum:
        for _ in range(2000):
            task = curriculum.get_task()
            curriculum.update_task_performance(task.task_id, student.episode(task.env_cfg))
    return redis_url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    return json.loads(run(capsys, *argv, "--json"))


def cells(line: str) -> list[str]:
    return line.split()


def assert_fits(out: str) -> None:
    long = [line for line in out.splitlines() if len(line) > WIDTH]
    assert not long, long


def test_inspect_shows_every_task_id_and_label_whole(trained: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = ("--redis-url", trained, "--namespace", "narrow", "inspect")
    rows = run_json(capsys, *base)
    out = run(capsys, *base)
    assert_fits(out)
    table_rows = [cells(line) for line in out.splitlines() if line.strip().split(" ")[0].isdigit()]
    assert [(int(r[0]), r[1]) for r in table_rows] == [(row["task_id"], row["label"]) for row in rows]
    assert "…" not in out
    header = next(line for line in out.splitlines() if "task_id" in line)
    assert cells(header)[:3] == ["task_id", "label", "probability"]
    assert "left out at 80 columns" in out  # the dropped columns are named, not silently cut


def test_stats_are_grouped_and_formatted_one_way(trained: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = ("--redis-url", trained, "--namespace", "narrow", "stats")
    stats = run_json(capsys, *base)
    out = run(capsys, *base)
    assert_fits(out)
    assert "…" not in out
    lines = out.splitlines()
    titles = [
        i for i, line in enumerate(lines) if line.strip() in ("counters of namespace 'narrow'", "pool", "per label")
    ]
    assert len(titles) == 3
    first_rows = [cells(line)[0] for line in lines[titles[0] : titles[1]] if line.strip().startswith("num_")]
    assert first_rows[:6] == [
        "num_completed",
        "num_created",
        "num_evicted",
        "num_scheduled",
        "num_active_tasks",
        "num_failures",
    ]
    pool_rows = [cells(line) for line in lines[titles[1] : titles[2]] if "/" in line]
    assert {row[0] for row in pool_rows} == {n for n in stats if "/" in n and not n.startswith("label/")}
    pairs = [cells(line) for line in lines[titles[0] : titles[2]]]
    pairs = [row for row in pairs if len(row) == 2 and row[0] in stats]
    assert len(pairs) == len(stats) - sum(n.startswith("label/") for n in stats)
    for name, value in pairs:
        expected = COUNT if name.rsplit("/", 1)[-1].startswith("num_") else FLOAT
        assert expected.match(value), (name, value)
    labels = {n.split("/")[1] for n in stats if n.startswith("label/")}
    label_rows = [cells(line) for line in lines[titles[2] :] if line.strip().startswith("student:")]
    assert {row[0] for row in label_rows} == labels
    for row in label_rows:
        assert all(COUNT.match(cell) or FLOAT.match(cell) for cell in row[1:]), row


@pytest.mark.parametrize("command", [["labels"], ["namespaces"]])
def test_other_tables_fit(trained: str, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "--redis-url", trained, "--namespace", "narrow", *command)
    assert_fits(out)
    assert "…" not in out


def test_stage_table_fits(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from curriculum_redis import StageConfig, StageCurriculum, StageCurriculumConfig

    config = StageCurriculumConfig(
        stages=[
            StageConfig(
                name="a-rather-long-stage-name", env_cfg={}, stop_condition="episodes>=3 and success>=0.5"
            ),
            StageConfig(name="last", env_cfg={}),
        ]
    )
    with StageCurriculum(config, redis_url, namespace="st") as curriculum:
        curriculum.record_episode(0, True)
    out = run(capsys, "--redis-url", redis_url, "--namespace", "st", "stage")
    assert_fits(out)
    assert "a-rather-long-stage-name" in out and "…" not in out


def test_fitted_table_never_cuts_a_key_column() -> None:
    from io import StringIO

    from rich.console import Console

    ids = [str(10**15 + i) for i in range(3)]
    columns = [
        Column("task_id", ids, key=True),
        Column("label", ["x" * 60] * 3, justify="left", key=True),
        Column("extra", ["1.000"] * 3, priority=1),
    ]
    console = Console(file=StringIO(), width=WIDTH)
    console.print(fitted_table("t", columns, WIDTH))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    header = next(line for line in text.splitlines() if "task_id" in line)
    assert cells(header) == ["task_id", "label"] and "left out at 80 columns: extra" in text
    assert all(i in text for i in ids) and "…" not in text
    assert_fits(text)


def test_number_format() -> None:
    assert number(1234567, True) == "1,234,567"
    assert number(0.0625, False) == "0.06250"
    assert number(1.0, False) == "1.000"
    assert number(2.5e-7, False) == "2.500e-07"


def test_demo_redis_cli_commands_are_never_wrapped(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--redis-url", redis_url, "demo", "--episodes", "2000", "--workers", "1", "--tasks", "8"]
    out = run(capsys, *argv, "--out", str(tmp_path), "--no-progress")
    lines = [line.strip() for line in out.splitlines()]
    commands = redis_cli_commands(RedisInfo(url=redis_url, namespace="demo", embedded=False))
    assert all(command in lines for command in commands)
    assert len(commands[0]) > 40
    table_lines = [line for line in out.splitlines() if line.lstrip().startswith(("student:", "─"))]
    assert table_lines and all(len(line) <= WIDTH for line in table_lines)
