"""Config files: every example in examples/configs/ loads (JSON and YAML alike) and runs a curriculum;
``CurriculumConfig.from_file`` names the file in every error; a sparse dump written to a file reads back."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from curriculum_redis import Curriculum, CurriculumConfig
from curriculum_redis.algorithms.sequential import SequentialConfig
from curriculum_redis.algorithms.uniform import UniformConfig
from curriculum_redis.errors import ConfigError
from curriculum_redis.tasks import BucketedTaskGenerator, SingleTaskGenerator, Span

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "configs"
ALGORITHMS = ["frontier", "learning_progress", "prioritized_replay", "learnability", "uniform", "sequential"]
POOL_ALGORITHMS = [name for name in ALGORITHMS if name != "sequential"]


def test_there_is_a_json_and_a_yaml_example_for_every_algorithm_and_nothing_else() -> None:
    expected = {f"{name}.{suffix}" for name in ALGORITHMS for suffix in ("json", "yaml")}
    assert {path.name for path in EXAMPLES.iterdir()} == expected


@pytest.mark.parametrize("name", ALGORITHMS)
def test_the_json_and_yaml_examples_hold_the_same_config_of_their_algorithm(name: str) -> None:
    from_json = CurriculumConfig.from_file(EXAMPLES / f"{name}.json")
    from_yaml = CurriculumConfig.from_file(EXAMPLES / f"{name}.yaml")
    assert from_json == from_yaml
    assert from_json.algorithm.algorithm == name
    # Complete: every top-level section is written out, not left to its default.
    assert set(json.loads((EXAMPLES / f"{name}.json").read_text())) >= set(CurriculumConfig.model_fields) - {
        "task_generator"
    }


@pytest.mark.parametrize("suffix", ["json", "yaml"])
@pytest.mark.parametrize("name", POOL_ALGORITHMS)
def test_every_pool_example_runs_a_curriculum_in_process(name: str, suffix: str) -> None:
    config = CurriculumConfig.from_file(EXAMPLES / f"{name}.{suffix}", redis_url=None)
    assert config.redis_url is None and config.namespace == f"example-{name.replace('_', '-')}"
    with Curriculum(config) as curriculum:
        labels = set()
        for episode in range(40):
            task = curriculum.get_task()
            labels.add(task.label.split(":")[0])
            assert "maze" in task.env_cfg
            curriculum.update_task_performance(task.task_id, float(episode % 2))
        curriculum.flush()
        assert curriculum.stats()["num_completed"] == 40
    assert labels <= {"maze", "warmup"} and "maze" in labels


@pytest.mark.parametrize("suffix", ["json", "yaml"])
def test_the_sequential_example_runs_on_redis(suffix: str, redis_url: str) -> None:
    config = CurriculumConfig.from_file(EXAMPLES / f"sequential.{suffix}", redis_url=redis_url)
    assert isinstance(config.algorithm, SequentialConfig)
    with Curriculum(config) as curriculum:
        for _ in range(10):
            task = curriculum.get_task()
            assert task.label == "easy" and task.env_cfg == {"env": "maze", "maze": {"size": 5}}
            curriculum.update_task_performance(task.task_id, 1.0)
        curriculum.flush()
        assert curriculum.label_table()["easy"]["episodes"] == 10


def test_the_sequential_example_runs_in_one_process_without_redis() -> None:
    config = CurriculumConfig.from_file(EXAMPLES / "sequential.json", redis_url=None)
    with Curriculum(config) as curriculum:
        for _ in range(10):
            task = curriculum.get_task()
            assert task.label == "easy"
            curriculum.update_task_performance(task.task_id, 1.0)
        curriculum.flush()
        assert curriculum.stats()["stage/easy/episodes"] == 10


@pytest.mark.parametrize("suffix", ["json", "yaml", "yml"])
@pytest.mark.parametrize("exclude", ["exclude_defaults", "exclude_unset"])
def test_a_sparse_dump_written_to_a_file_reads_back(tmp_path: Path, suffix: str, exclude: str) -> None:
    import yaml

    config = CurriculumConfig(
        task_generator=BucketedTaskGenerator({"env": "maze"}, {"maze.size": [5, 9], "walls": Span(0.1, 0.3)}),
        algorithm=UniformConfig(num_active_tasks=8),
        namespace="sparse",
    )
    data = json.loads(config.model_dump_json(**{exclude: True}))
    path = tmp_path / f"config.{suffix}"
    path.write_text(json.dumps(data) if suffix == "json" else yaml.safe_dump(data))
    assert CurriculumConfig.from_file(path) == config


def test_overrides_replace_top_level_fields(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"task_generator": {"kind": "single"}, "namespace": "from-file"}))
    config = CurriculumConfig.from_file(str(path), namespace="given", seed=3)
    assert (config.namespace, config.seed, config.task_generator) == ("given", 3, SingleTaskGenerator())


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("c.toml", "x = 1", "unknown suffix '.toml'"),
        ("c.json", "{not json", "is not valid JSON"),
        ("c.yaml", "a: [1, 2", "is not valid YAML"),
        ("c.json", "[1, 2]", "must hold a mapping of fields, not list"),
        ("c.yaml", "", "must hold a mapping of fields, not NoneType"),
        ("c.json", '{"task_generator": {"kind": "single"}, "namspace": "x"}', "namspace"),
        ("c.json", '{"algorithm": {"algorithm": "uniform"}}', "task_generator is required"),
        ("c.yaml", "task_generator: {kind: nope}", "unknown task generator kind 'nope'"),
    ],
)
def test_a_bad_file_is_a_config_error_naming_the_file_and_the_problem(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=str(path)) as info:
        CurriculumConfig.from_file(path)
    assert message in str(info.value)


def test_a_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*missing\.json: No such file"):
        CurriculumConfig.from_file(tmp_path / "missing.json")


def test_yaml_without_pyyaml_names_the_extra_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml now raises ImportError
    with pytest.raises(ConfigError, match=r"needs PyYAML: pip install 'curriculum_redis\[yaml\]'"):
        CurriculumConfig.from_file(EXAMPLES / "uniform.yaml")
    assert CurriculumConfig.from_file(EXAMPLES / "uniform.json").algorithm.algorithm == "uniform"
