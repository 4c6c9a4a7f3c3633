"""Task generators and label hashes: deterministic from the task id, in every process and hash seed."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections import Counter
from typing import Any

import pytest

from curriculum_redis.config import CurriculumConfig
from curriculum_redis.errors import ConfigError
from curriculum_redis.labels import LABEL_HASH_BITS, label_hash
from curriculum_redis.store.schema import MAX_TASK_ID
from curriculum_redis.tasks import (
    BucketedTaskGenerator,
    SingleTaskGenerator,
    Span,
    Task,
    TaskGenerator,
    TaskGeneratorSet,
)

TASK_IDS = [1, 2, 3, 17, 999, 123_456, 2**31 - 1, *range(1000, 1043)]  # 50 ids
LABELS = ["default", "maze:size=8,walls=0.1..0.3", "", "ünïcødé label", "a" * 500]


def _config() -> CurriculumConfig:
    """A nested config read back from JSON in the child: list buckets, a weighted set, a single."""
    maze = BucketedTaskGenerator(
        base={"game": {"agents": 2}},
        buckets={"game.size": [8, 16, 32], "game.walls": [0.1, 0.2, 0.3], "game.keys": list(range(6))},
        label="maze",
    )
    arena = BucketedTaskGenerator(buckets={"arena.mode": ["ffa", "teams"]}, label="arena")
    return CurriculumConfig(
        task_generator=TaskGeneratorSet([maze, arena, SingleTaskGenerator({"x": 1}, label="flat")], [3.0, 2.0, 1.0])
    )


def _span_generator() -> BucketedTaskGenerator:
    """Built in code on both sides (not from JSON), so Span draws are compared across processes too."""
    return BucketedTaskGenerator(buckets={"walls": Span(0.1, 0.3), "keys": Span(0, 5)}, label="spans")


def _generate_in_child(config_json: str, task_ids: list[int], labels: list[str]) -> dict[str, Any]:
    """Runs in a spawned interpreter (another PYTHONHASHSEED): tasks, label hashes and its str hash."""
    cfg = CurriculumConfig.model_validate_json(config_json)
    tasks = [cfg.task_generator.get_task(i) for i in task_ids]
    span_tasks = [_span_generator().get_task(i) for i in task_ids]
    return {
        "tasks": [(t.task_id, t.label, t.env_cfg) for t in tasks],
        "span_tasks": [(t.task_id, t.label, t.env_cfg) for t in span_tasks],
        "label_hashes": [label_hash(label) for label in labels],
        "str_hash": hash("curriculum_redis hash probe"),
        "hashseed": os.environ.get("PYTHONHASHSEED"),
    }


def _run_in_spawned_process_with_other_hashseed(config_json: str) -> dict[str, Any]:
    seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    old = os.environ.get("PYTHONHASHSEED")
    os.environ["PYTHONHASHSEED"] = seed  # read by the spawned interpreter at start-up
    try:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            result: dict[str, Any] = pool.apply(_generate_in_child, (config_json, TASK_IDS, LABELS))
    finally:
        if old is None:
            del os.environ["PYTHONHASHSEED"]
        else:
            os.environ["PYTHONHASHSEED"] = old
    assert result["hashseed"] == seed
    # The child really hashes strings differently from this process, so hash() could not agree.
    assert result["str_hash"] != hash("curriculum_redis hash probe")
    return result


@pytest.fixture(scope="module")
def child_result() -> dict[str, Any]:
    return _run_in_spawned_process_with_other_hashseed(_config().model_dump_json())


# --------------------------------------------------------------------------- determinism


@pytest.mark.slow
def test_tasks_are_identical_in_a_spawned_process_with_another_hash_seed(child_result: dict[str, Any]) -> None:
    cfg = _config()
    mine = [cfg.task_generator.get_task(i) for i in TASK_IDS]
    theirs = [Task(task_id, label, env_cfg) for task_id, label, env_cfg in child_result["tasks"]]
    assert len(theirs) == 50
    assert theirs == mine
    # And the ids covered more than one generator and bucket, so the comparison means something.
    assert len({t.label for t in mine}) >= 5
    span_mine = [_span_generator().get_task(i) for i in TASK_IDS]
    span_theirs = [Task(task_id, label, env_cfg) for task_id, label, env_cfg in child_result["span_tasks"]]
    assert span_theirs == span_mine
    assert len({t.env_cfg["walls"] for t in span_mine}) == 50


@pytest.mark.slow
def test_label_hash_is_identical_in_a_spawned_process_with_another_hash_seed(child_result: dict[str, Any]) -> None:
    assert child_result["label_hashes"] == [label_hash(label) for label in LABELS]


def test_same_task_id_gives_the_same_task_every_time_and_from_a_fresh_generator() -> None:
    gen = _config().task_generator
    again = CurriculumConfig.model_validate_json(_config().model_dump_json()).task_generator
    for task_id in TASK_IDS:
        assert gen.get_task(task_id) == gen.get_task(task_id) == again.get_task(task_id)


def test_different_task_ids_spread_over_buckets() -> None:
    gen = BucketedTaskGenerator(buckets={"size": [1, 2, 3, 4]})
    sizes = Counter(gen.get_task(i).env_cfg["size"] for i in range(1, 401))
    assert set(sizes) == {1, 2, 3, 4}
    assert min(sizes.values()) > 60  # 100 expected per value


def test_task_env_cfg_is_a_copy_not_the_generators_base() -> None:
    gen = BucketedTaskGenerator(base={"game": {"size": 0, "keep": [1]}}, buckets={"game.size": [5]})
    task = gen.get_task(3)
    task.env_cfg["game"]["keep"].append(2)
    assert gen.base == {"game": {"size": 0, "keep": [1]}}
    assert gen.get_task(3).env_cfg == {"game": {"size": 5, "keep": [1]}}
    single = SingleTaskGenerator({"a": {"b": 1}})
    single.get_task(1).env_cfg["a"]["b"] = 99
    assert single.get_task(1).env_cfg == {"a": {"b": 1}}


@pytest.mark.parametrize("task_id", [-1, MAX_TASK_ID + 1])
def test_task_id_outside_53_bits_is_refused(task_id: int) -> None:
    with pytest.raises(ConfigError, match="task_id"):
        SingleTaskGenerator().get_task(task_id)


def test_largest_task_id_is_accepted() -> None:
    assert SingleTaskGenerator(label="x").get_task(MAX_TASK_ID).task_id == 2**53 - 1


# --------------------------------------------------------------------------- labels


def test_single_generator_uses_its_label_and_config() -> None:
    task = SingleTaskGenerator({"level": 2}, label="lvl2").get_task(42)
    assert task == Task(42, "lvl2", {"level": 2})


def test_bucket_labels_name_the_chosen_values_in_bucket_order() -> None:
    gen = BucketedTaskGenerator(
        base={"game": {}}, buckets={"game.size": [8, 16], "game.mode": ["ffa", "teams"]}, label="maze"
    )
    seen = set()
    for task_id in range(1, 200):
        task = gen.get_task(task_id)
        size, mode = task.env_cfg["game"]["size"], task.env_cfg["game"]["mode"]
        assert task.label == f"maze:game.size={size},game.mode={mode}"
        seen.add(task.label)
    assert seen == {
        "maze:game.size=8,game.mode=ffa",
        "maze:game.size=8,game.mode=teams",
        "maze:game.size=16,game.mode=ffa",
        "maze:game.size=16,game.mode=teams",
    }


def test_span_buckets_are_named_by_their_range() -> None:
    gen = BucketedTaskGenerator(buckets={"walls": Span(0.1, 0.3), "keys": Span(1, 4)}, label="m")
    task = gen.get_task(7)
    assert task.label == "m:walls=0.1..0.3,keys=1..4"


def test_bucket_dot_path_creates_nested_mappings() -> None:
    task = BucketedTaskGenerator(buckets={"a.b.c": [3]}).get_task(1)
    assert task.env_cfg == {"a": {"b": {"c": 3}}}


def test_bucket_path_through_a_non_mapping_is_a_config_error() -> None:
    gen = BucketedTaskGenerator(base={"a": 5}, buckets={"a.b": [1]})
    with pytest.raises(ConfigError, match=r"a\.b"):
        gen.get_task(1)


@pytest.mark.parametrize("buckets", [{}, {"size": []}, {"": [1]}, {"a..b": [1]}])
def test_bad_buckets_are_refused(buckets: dict[str, Any]) -> None:
    with pytest.raises((ValueError, ConfigError)):
        BucketedTaskGenerator(buckets=buckets)


def test_task_label_hash_property_uses_label_hash() -> None:
    task = SingleTaskGenerator(label="abc").get_task(1)
    assert task.label_hash == label_hash("abc")


# --------------------------------------------------------------------------- Span


def test_integer_span_draws_ints_in_the_closed_range_hitting_both_ends() -> None:
    gen = BucketedTaskGenerator(buckets={"n": Span(2, 5)})
    values = [gen.get_task(i).env_cfg["n"] for i in range(1, 500)]
    assert all(type(v) is int for v in values)
    assert set(values) == {2, 3, 4, 5}


def test_float_span_draws_floats_in_range() -> None:
    gen = BucketedTaskGenerator(buckets={"x": Span(0.25, 0.75)})
    values = [gen.get_task(i).env_cfg["x"] for i in range(1, 500)]
    assert all(type(v) is float and 0.25 <= v <= 0.75 for v in values)
    assert len(set(values)) > 400  # continuous, not a few repeated values
    assert min(values) < 0.3 and max(values) > 0.7


def test_span_with_one_float_bound_draws_floats() -> None:
    gen = BucketedTaskGenerator(buckets={"x": Span(1, 3.0)})
    values = [gen.get_task(i).env_cfg["x"] for i in range(1, 100)]
    assert all(type(v) is float and 1.0 <= v <= 3.0 for v in values)


def test_degenerate_span_draws_its_only_value() -> None:
    gen = BucketedTaskGenerator(buckets={"n": Span(4, 4)})
    assert {gen.get_task(i).env_cfg["n"] for i in range(1, 20)} == {4}


def test_span_with_lo_above_hi_is_refused() -> None:
    with pytest.raises(ValueError, match="lo <= hi"):
        Span(3, 1)


def test_span_bucket_read_from_json_stays_a_span() -> None:
    gen = BucketedTaskGenerator(buckets={"walls": Span(0.1, 0.3), "keys": Span(1, 4), "size": [8, 16]})
    back = BucketedTaskGenerator.model_validate_json(gen.model_dump_json())
    assert back.buckets == {"walls": Span(0.1, 0.3), "keys": Span(1, 4), "size": [8, 16]}
    for task_id in range(1, 30):
        assert back.get_task(task_id) == gen.get_task(task_id)


def test_span_bucket_given_as_a_dict_is_a_span() -> None:
    gen = BucketedTaskGenerator.model_validate({"buckets": {"keys": {"lo": 0, "hi": 5}}})
    assert gen.buckets["keys"] == Span(0, 5)
    assert gen.get_task(3).env_cfg["keys"] in range(6)


def test_int_span_stays_int_through_json() -> None:
    span = Span.model_validate_json(Span(1, 9).model_dump_json())
    assert type(span.lo) is int and type(span.hi) is int
    fspan = Span.model_validate_json(Span(0.0, 1.0).model_dump_json())
    assert type(fspan.lo) is float and type(fspan.hi) is float


# --------------------------------------------------------------------------- TaskGeneratorSet


def _labelled_set(weights: list[float] | None) -> TaskGeneratorSet:
    return TaskGeneratorSet([SingleTaskGenerator(label=name) for name in ("a", "b", "c")], weights)


def test_generator_with_zero_weight_is_never_chosen() -> None:
    counts = Counter(_labelled_set([1.0, 0.0, 3.0]).get_task(i).label for i in range(1, 5001))
    assert counts["b"] == 0
    assert counts["a"] + counts["c"] == 5000


def test_generator_weights_are_respected_statistically() -> None:
    n = 20_000
    counts = Counter(_labelled_set([1.0, 2.0, 5.0]).get_task(i).label for i in range(1, n + 1))
    for label, share in (("a", 1 / 8), ("b", 2 / 8), ("c", 5 / 8)):
        expected = n * share
        sd = (n * share * (1 - share)) ** 0.5
        assert abs(counts[label] - expected) < 5 * sd, (label, counts)


def test_generator_set_without_weights_is_uniform() -> None:
    n = 9000
    counts = Counter(_labelled_set(None).get_task(i).label for i in range(1, n + 1))
    for label in "abc":
        assert abs(counts[label] - n / 3) < 5 * (n * (1 / 3) * (2 / 3)) ** 0.5


def test_only_first_generator_with_weight_chosen() -> None:
    counts = Counter(_labelled_set([2.0, 0.0, 0.0]).get_task(i).label for i in range(1, 2001))
    assert counts == Counter({"a": 2000})


@pytest.mark.parametrize("weights", [[1.0, 1.0], [0.0, 0.0, 0.0], [1.0, -1.0, 1.0], [1.0, float("nan"), 1.0]])
def test_bad_weights_are_refused(weights: list[float]) -> None:
    with pytest.raises(ValueError, match="weights"):
        _labelled_set(weights)


def test_empty_generator_set_is_refused() -> None:
    with pytest.raises(ValueError, match="generators"):
        TaskGeneratorSet([])


def test_base_generator_without_generate_says_so() -> None:
    class Bare(TaskGenerator):
        kind: str = "test_tasks_bare"

    with pytest.raises(NotImplementedError, match="Bare"):
        Bare().get_task(1)


# --------------------------------------------------------------------------- label_hash


@pytest.mark.parametrize("label", LABELS)
def test_label_hash_is_the_first_53_bits_of_sha256(label: str) -> None:
    digest = hashlib.sha256(label.encode("utf-8")).hexdigest()
    first_64_bits = int(digest[:16], 16)
    assert label_hash(label) == first_64_bits >> 11
    assert 0 <= label_hash(label) < 2**53
    assert LABEL_HASH_BITS == 53


def test_label_hash_of_known_strings() -> None:
    # sha256("") = e3b0c44298fc1c14...; its first 64 bits >> 11, worked out by hand.
    assert label_hash("") == 0xE3B0C44298FC1C14 >> 11
    # sha256("abc") = ba7816bf8f01cfea...
    assert label_hash("abc") == 0xBA7816BF8F01CFEA >> 11


def test_label_hash_is_exact_as_a_double() -> None:
    for label in LABELS:
        assert int(float(label_hash(label))) == label_hash(label)


def test_distinct_labels_have_distinct_hashes() -> None:
    labels = [f"maze:size={i}" for i in range(5000)]
    assert len({label_hash(label) for label in labels}) == 5000
