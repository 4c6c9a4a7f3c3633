"""Configuration: documented defaults, refusal of bad input, presets, JSON round trips, hyper reconciliation."""

from __future__ import annotations

import inspect
import json
import math
from typing import Any, Literal

import pytest
from pydantic import ValidationError

from curriculum_redis.algorithms.frontier import FrontierConfig
from curriculum_redis.algorithms.learnability import LearnabilityConfig
from curriculum_redis.algorithms.learning_progress import LearningProgressConfig
from curriculum_redis.algorithms.prioritized_replay import PrioritizedReplayConfig
from curriculum_redis.algorithms.sequential import SequentialConfig, StageConfig
from curriculum_redis.algorithms.uniform import UniformConfig
from curriculum_redis.config import (
    AlgorithmConfig,
    BufferConfig,
    CurriculumConfig,
    PoolConfig,
    SamplerConfig,
    build,
    parse_algorithm_json,
    parse_config,
    reconcile_hypers,
)
from curriculum_redis.errors import ConfigError, HyperparameterMismatchError
from curriculum_redis.tasks import (
    BucketedTaskGenerator,
    SingleTaskGenerator,
    Span,
    Task,
    TaskGenerator,
    TaskGeneratorSet,
)

REFUSED = (ValidationError, ConfigError)


class RingGenerator(TaskGenerator):
    """A user-defined generator, found again by its ``kind`` when a config is read from JSON."""

    kind: Literal["test_config_ring"] = "test_config_ring"
    radius: int = 3
    tag: str = "ring"

    def generate(self, task_id: int) -> Task:
        return Task(task_id, f"{self.tag}:r={self.radius}", {"radius": self.radius, "id_mod": task_id % 7})


# --------------------------------------------------------------------------- defaults


def test_defaults_match_design_section_4() -> None:
    cfg = LearningProgressConfig()
    assert cfg.ema_timescale == 0.1
    assert cfg.slow_timescale_factor == 0.2
    assert cfg.min_samples_for_lp == 10
    assert cfg.eviction_threshold_percentile == 0.4
    assert cfg.min_presentations_for_eviction == 5
    assert cfg.z_score_amplification == 10
    assert cfg.early_progress_amplification == 0.5
    assert cfg.tracker_ema_alpha == 0.02
    assert cfg.random_baseline is None
    assert cfg.use_bidirectional is True
    assert cfg.score_range == (0.0, 1.0)


def test_curriculum_config_defaults_run_in_memory_with_error_policy() -> None:
    cfg = CurriculumConfig(task_generator=SingleTaskGenerator())
    assert cfg.redis_url is None
    assert cfg.namespace == "default"
    assert cfg.on_mismatch == "error"
    assert cfg.algorithm == FrontierConfig()
    assert cfg.buffer == BufferConfig()
    assert cfg.sampler == SamplerConfig()


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("model", [LearningProgressConfig, BufferConfig, SamplerConfig])
def test_unknown_field_is_refused_and_named(model: type[Any]) -> None:
    with pytest.raises(REFUSED, match="ema_timescal_typo"):
        model(ema_timescal_typo=0.3)


def test_unknown_top_level_field_of_curriculum_config_is_refused() -> None:
    with pytest.raises(REFUSED, match="num_active_tasks"):
        CurriculumConfig(task_generator=SingleTaskGenerator(), num_active_tasks=8)


def test_unknown_field_inside_generator_is_refused() -> None:
    with pytest.raises(REFUSED, match="colour"):
        CurriculumConfig.model_validate({"task_generator": {"kind": "single", "colour": "red"}})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ema_timescale", 0.0),
        ("ema_timescale", 1.5),
        ("ema_timescale", float("nan")),
        ("slow_timescale_factor", -0.1),
        ("min_samples_for_lp", 0),
        ("num_active_tasks", 0),
        ("eviction_threshold_percentile", 1.01),
        ("min_presentations_for_eviction", 0),
        ("max_evictions_per_refresh", -1),
        ("z_score_amplification", 0.0),
        ("early_progress_amplification", 0.0),
        ("early_progress_amplification", 1.0),
        ("random_baseline", 1.0),
        ("rand_task_rate", 1.5),
        ("tracker_ema_alpha", 0.0),
        ("success_threshold", -0.5),
        ("exploration_bonus", -1.0),
        ("score_range", (1.0, 0.0)),
        ("score_range", (0.0, 0.0)),
        ("score_range", (0.0, float("inf"))),
        ("score_range", (float("nan"), 1.0)),
    ],
)
def test_out_of_range_value_is_refused_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(REFUSED, match=field):
        LearningProgressConfig(**{field: value})
    with pytest.raises(ConfigError, match=field):
        build(LearningProgressConfig, {field: value})


@pytest.mark.parametrize(
    "field", ["exploration_bonus", "z_score_amplification", "progress_smoothing", "performance_bonus_weight"]
)
def test_infinite_hyperparameter_is_refused(field: str) -> None:
    with pytest.raises(REFUSED, match=field):
        LearningProgressConfig(**{field: float("inf")})


def test_wrong_type_is_refused() -> None:
    with pytest.raises(REFUSED, match="min_samples_for_lp"):
        LearningProgressConfig(min_samples_for_lp=2.5)
    with pytest.raises(REFUSED, match="on_mismatch"):
        CurriculumConfig(task_generator=SingleTaskGenerator(), on_mismatch="ignore")


@pytest.mark.parametrize("namespace", ["a b", "exp:1", "{cr}", "runs*", "what?", "x[1]", "tab\there", "nl\n", ""])
def test_namespace_with_unreadable_or_key_breaking_characters_is_refused(namespace: str) -> None:
    with pytest.raises(REFUSED, match="namespace"):
        CurriculumConfig(task_generator=SingleTaskGenerator(), namespace=namespace)


@pytest.mark.parametrize("namespace", ["exp-1", "run_2024.03", "A", "x" * 128])
def test_readable_namespace_is_accepted(namespace: str) -> None:
    assert CurriculumConfig(task_generator=SingleTaskGenerator(), namespace=namespace).namespace == namespace


def test_namespace_longer_than_128_characters_is_refused() -> None:
    with pytest.raises(REFUSED, match="namespace"):
        CurriculumConfig(task_generator=SingleTaskGenerator(), namespace="x" * 129)


def test_redis_url_with_unknown_scheme_is_refused() -> None:
    with pytest.raises(REFUSED, match="redis_url"):
        CurriculumConfig(task_generator=SingleTaskGenerator(), redis_url="http://localhost:6379")
    ok = CurriculumConfig(task_generator=SingleTaskGenerator(), redis_url="redis://localhost:6379/0")
    assert ok.redis_url == "redis://localhost:6379/0"


def test_configs_are_frozen() -> None:
    cfg = LearningProgressConfig()
    with pytest.raises(ValidationError):
        cfg.ema_timescale = 0.5  # type: ignore[misc]


# --------------------------------------------------------------------------- presets


def test_default_preset_equals_defaults() -> None:
    assert LearningProgressConfig.preset("default") == LearningProgressConfig()


def test_stable_preset_is_slower_and_asks_for_more_evidence() -> None:
    cfg = LearningProgressConfig.preset("stable")
    default = LearningProgressConfig()
    assert cfg.ema_timescale < default.ema_timescale
    assert cfg.min_samples_for_lp > default.min_samples_for_lp
    assert cfg.min_presentations_for_eviction > default.min_presentations_for_eviction
    assert cfg.ema_timescale == 0.05
    assert cfg.min_samples_for_lp == 20


def test_fast_learning_preset_is_faster() -> None:
    cfg = LearningProgressConfig.preset("fast_learning")
    default = LearningProgressConfig()
    assert cfg.ema_timescale > default.ema_timescale
    assert cfg.min_samples_for_lp < default.min_samples_for_lp
    assert cfg.max_evictions_per_refresh > default.max_evictions_per_refresh


@pytest.mark.parametrize("name", ["default", "stable", "fast_learning"])
def test_preset_overrides_win_and_keep_the_rest_of_the_preset(name: str) -> None:
    base = LearningProgressConfig.preset(name)
    cfg = LearningProgressConfig.preset(name, num_active_tasks=32, ema_timescale=0.3)
    assert cfg.num_active_tasks == 32
    assert cfg.ema_timescale == 0.3
    assert base.differences(cfg) == {
        "num_active_tasks": (base.num_active_tasks, 32),
        "ema_timescale": (base.ema_timescale, 0.3),
    }


def test_unknown_preset_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="turbo") as info:
        LearningProgressConfig.preset("turbo")
    for known in ("default", "stable", "fast_learning"):
        assert known in str(info.value)


def test_preset_with_bad_override_is_a_config_error_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="ema_timescale"):
        LearningProgressConfig.preset("stable", ema_timescale=2.0)
    with pytest.raises(ConfigError, match="not_a_field"):
        LearningProgressConfig.preset("default", not_a_field=1)


# --------------------------------------------------------------------------- JSON round trips


def _nested_generator() -> TaskGeneratorSet:
    single = SingleTaskGenerator({"map": "open", "agents": 2}, label="open")
    bucketed = BucketedTaskGenerator(
        base={"game": {"width": 10}},
        buckets={"game.width": [8, 16, 32], "game.walls": Span(0.1, 0.3), "game.keys": Span(1, 4)},
        label="maze",
    )
    inner = TaskGeneratorSet([SingleTaskGenerator(label="inner-a"), SingleTaskGenerator(label="inner-b")], [1.0, 3.0])
    return TaskGeneratorSet([single, bucketed, inner], weights=[0.2, 0.5, 0.3])


def _round_trip(cfg: CurriculumConfig) -> CurriculumConfig:
    text = cfg.model_dump_json()
    json.loads(text)  # plain JSON, nothing pickled
    return CurriculumConfig.model_validate_json(text)


@pytest.mark.parametrize(
    "generator",
    [
        SingleTaskGenerator({"level": 3}, label="lvl3"),
        BucketedTaskGenerator({"a": {"b": 1}}, {"a.b": [1, 2, 3], "c": ["x", "y"]}),
        pytest.param(
            BucketedTaskGenerator({"a": {"b": 1}}, {"a.b": [1, 2, 3], "c": Span(0.5, 2.5), "d": Span(0, 9)}),
            id="bucketed-span",
        ),
        TaskGeneratorSet([SingleTaskGenerator(label="x"), SingleTaskGenerator(label="y")], weights=[1.0, 2.0]),
        pytest.param(_nested_generator(), id="nested"),
    ],
    ids=["single", "bucketed-lists", "bucketed-span", "set", "nested"],
)
def test_curriculum_config_round_trips_through_json(generator: TaskGenerator) -> None:
    cfg = CurriculumConfig(
        task_generator=generator,
        algorithm=LearningProgressConfig.preset("stable", num_active_tasks=64, random_baseline=0.25),
        seed=7,
        namespace="exp-7",
        buffer=BufferConfig(batch_size=8),
        sampler=SamplerConfig(refresh_every_draws=10),
        on_mismatch="allow_safe",
    )
    back = _round_trip(cfg)
    assert back == cfg
    assert type(back.task_generator) is type(generator)
    for task_id in (1, 2, 3, 1000, 2**31 - 1):
        assert back.task_generator.get_task(task_id) == generator.get_task(task_id)


def test_nested_generators_keep_their_classes_weights_and_spans() -> None:
    back = _round_trip(CurriculumConfig(task_generator=_nested_generator())).task_generator
    assert isinstance(back, TaskGeneratorSet)
    assert back.weights == [0.2, 0.5, 0.3]
    single, bucketed, inner = back.generators
    assert isinstance(single, SingleTaskGenerator)
    assert isinstance(bucketed, BucketedTaskGenerator)
    assert isinstance(inner, TaskGeneratorSet)
    assert inner.weights == [1.0, 3.0]
    assert bucketed.buckets["game.width"] == [8, 16, 32]
    walls, keys = bucketed.buckets["game.walls"], bucketed.buckets["game.keys"]
    assert isinstance(walls, Span) and isinstance(keys, Span)
    assert (walls.lo, walls.hi) == (0.1, 0.3)
    assert isinstance(keys.lo, int) and isinstance(keys.hi, int)


def test_user_generator_subclass_round_trips_by_its_kind() -> None:
    gen = TaskGeneratorSet([RingGenerator(radius=5, tag="big"), SingleTaskGenerator(label="plain")], [1.0, 1.0])
    cfg = CurriculumConfig(task_generator=gen)
    data = json.loads(cfg.model_dump_json())
    assert data["task_generator"]["generators"][0] == {"kind": "test_config_ring", "radius": 5, "tag": "big"}
    back = _round_trip(cfg)
    assert back == cfg
    ring = back.task_generator.generators[0]  # type: ignore[attr-defined]
    assert isinstance(ring, RingGenerator)
    assert ring.get_task(12) == Task(12, "big:r=5", {"radius": 5, "id_mod": 5})


def test_user_generator_at_top_level_round_trips() -> None:
    cfg = CurriculumConfig(task_generator=RingGenerator(radius=9))
    back = _round_trip(cfg)
    assert isinstance(back.task_generator, RingGenerator)
    assert back.task_generator.radius == 9


def test_unknown_generator_kind_is_a_config_error_naming_it() -> None:
    with pytest.raises(REFUSED, match="no_such_kind"):
        CurriculumConfig.model_validate({"task_generator": {"kind": "no_such_kind"}})


def test_generator_without_kind_is_refused() -> None:
    with pytest.raises(REFUSED, match="kind"):
        CurriculumConfig.model_validate({"task_generator": {"label": "x"}})


ALGORITHMS: dict[str, Any] = {
    "learning_progress": LearningProgressConfig(),
    "learning_progress-changed": LearningProgressConfig(num_active_tasks=32, random_baseline=0.2),
    "prioritized_replay": PrioritizedReplayConfig(),
    "prioritized_replay-changed": PrioritizedReplayConfig(score_update="ema", score_range=(0.0, 5.0)),
    "learnability": LearnabilityConfig(),
    "learnability-changed": LearnabilityConfig(sampling="top_k", top_k=4),
    "uniform": UniformConfig(),
    "uniform-changed": UniformConfig(num_active_tasks=8, max_evictions_per_refresh=2),
    "sequential": SequentialConfig(stages=[StageConfig(name="only")]),
    "sequential-changed": SequentialConfig(
        stages=[
            StageConfig(name="easy", env_cfg={"level": 1}, stop_condition="episodes>=5"),
            StageConfig(name="gen", task_generator=SingleTaskGenerator()),
        ]
    ),
}

GENERATORS: dict[str, TaskGenerator] = {
    "single-default": SingleTaskGenerator(),
    "single": SingleTaskGenerator({"level": 3}, label="lvl3"),
    "bucketed": BucketedTaskGenerator(buckets={"a.b": [1, 2], "c": Span(0, 3)}),
    "set-default-children": TaskGeneratorSet([SingleTaskGenerator(), SingleTaskGenerator()]),
    "nested": _nested_generator(),
    "user": RingGenerator(),
}


@pytest.mark.parametrize("exclude", ["exclude_defaults", "exclude_unset", "exclude_none"])
@pytest.mark.parametrize("algorithm", ALGORITHMS.values(), ids=list(ALGORITHMS))
def test_a_sparse_dump_of_every_algorithm_reads_back_as_the_same_config(algorithm: Any, exclude: str) -> None:
    cfg = CurriculumConfig(task_generator=SingleTaskGenerator(), algorithm=algorithm)
    text = cfg.model_dump_json(**{exclude: True})
    back = CurriculumConfig.model_validate_json(text)
    assert back == cfg
    assert type(back.algorithm) is type(algorithm)
    dumped = json.loads(text).get("algorithm")  # absent only when it is the default (learning progress)
    assert dumped["algorithm"] == algorithm.algorithm if dumped is not None else algorithm == LearningProgressConfig()


@pytest.mark.parametrize("exclude", ["exclude_defaults", "exclude_unset", "exclude_none"])
@pytest.mark.parametrize("generator", GENERATORS.values(), ids=list(GENERATORS))
def test_a_sparse_dump_of_every_generator_kind_reads_back_as_the_same_generator(
    generator: TaskGenerator, exclude: str
) -> None:
    cfg = CurriculumConfig(task_generator=generator, algorithm=UniformConfig())
    data = json.loads(cfg.model_dump_json(**{exclude: True}))
    assert data["task_generator"]["kind"] == generator.kind
    back = CurriculumConfig.model_validate(data)
    assert back == cfg
    assert type(back.task_generator) is type(generator)
    assert back.generator.get_task(77) == generator.get_task(77)


def test_sparse_dumps_tag_nested_generators_and_stage_generators() -> None:
    data = TaskGeneratorSet([SingleTaskGenerator(), _nested_generator()]).model_dump(exclude_defaults=True)
    assert [child["kind"] for child in data["generators"]] == ["single", "set"]
    assert [child["kind"] for child in data["generators"][1]["generators"]] == ["single", "bucketed", "set"]
    stage = StageConfig(name="s", task_generator=SingleTaskGenerator()).model_dump(exclude_defaults=True)
    assert stage == {"name": "s", "task_generator": {"kind": "single"}}


STORED_UNIFORM_HYPERS = (
    '{"num_active_tasks":256,"eviction_threshold_percentile":0.4,"min_presentations_for_eviction":5,'
    '"max_evictions_per_refresh":0,"max_consecutive_failures":3,"success_threshold":0.5,'
    '"score_range":[0.0,1.0],"algorithm":"uniform"}'
)
"""Hypers JSON in the field order of a namespace's meta that must stay readable: the tag last."""


def test_stored_hypers_of_any_field_order_load_and_an_explicit_exclude_of_the_tag_is_honoured() -> None:
    assert UniformConfig.model_validate_json(STORED_UNIFORM_HYPERS) == UniformConfig()
    assert parse_algorithm_json(STORED_UNIFORM_HYPERS) == UniformConfig()
    assert "algorithm" not in UniformConfig().model_dump(exclude={"algorithm"})
    assert "kind" not in SingleTaskGenerator().model_dump(exclude={"kind"})


# --------------------------------------------------------------------------- reconcile_hypers


def test_reconcile_with_equal_hypers_returns_the_given_ones() -> None:
    given = LearningProgressConfig(num_active_tasks=32)
    for policy in ("error", "allow_safe", "adopt"):
        assert reconcile_hypers(LearningProgressConfig(num_active_tasks=32), given, policy, "ns") == given


def test_reconcile_error_policy_refuses_any_difference_naming_stored_and_given_values() -> None:
    stored = LearningProgressConfig(ema_timescale=0.1, num_active_tasks=256, rand_task_rate=0.01)
    given = LearningProgressConfig(ema_timescale=0.3, num_active_tasks=64, rand_task_rate=0.05)
    with pytest.raises(HyperparameterMismatchError) as info:
        reconcile_hypers(stored, given, "error", "namespace 'exp'")
    message = str(info.value)
    assert "namespace 'exp'" in message
    assert "ema_timescale: stored=0.1 given=0.3" in message
    assert "num_active_tasks: stored=256 given=64" in message
    assert "rand_task_rate: stored=0.01 given=0.05" in message
    assert info.value.differences == {
        "ema_timescale": (0.1, 0.3),
        "num_active_tasks": (256, 64),
        "rand_task_rate": (0.01, 0.05),
    }


def test_reconcile_error_policy_refuses_even_a_safe_difference() -> None:
    assert "rand_task_rate" in LearningProgressConfig.SAFE
    with pytest.raises(HyperparameterMismatchError, match="rand_task_rate"):
        reconcile_hypers(LearningProgressConfig(), LearningProgressConfig(rand_task_rate=0.2), "error", "ns")


def test_reconcile_allow_safe_accepts_sampling_only_differences() -> None:
    stored = LearningProgressConfig()
    given = LearningProgressConfig(rand_task_rate=0.2, z_score_amplification=3.0, min_samples_for_lp=4)
    assert reconcile_hypers(stored, given, "allow_safe", "ns") == given


def test_reconcile_allow_safe_refuses_meaning_changing_fields_and_names_only_them() -> None:
    stored = LearningProgressConfig()
    given = LearningProgressConfig(rand_task_rate=0.2, ema_timescale=0.3, random_baseline=0.5)
    with pytest.raises(HyperparameterMismatchError) as info:
        reconcile_hypers(stored, given, "allow_safe", "ns")
    assert set(info.value.differences) == {"ema_timescale", "random_baseline"}
    message = str(info.value)
    assert "ema_timescale: stored=0.1 given=0.3" in message
    assert "random_baseline: stored=None given=0.5" in message
    assert "rand_task_rate" not in message


def test_reconcile_adopt_uses_the_stored_hypers() -> None:
    stored = LearningProgressConfig(ema_timescale=0.05, num_active_tasks=8)
    given = LearningProgressConfig(ema_timescale=0.3, num_active_tasks=64)
    assert reconcile_hypers(stored, given, "adopt", "ns") == stored


def test_meaning_changing_fields_are_not_safe_to_change() -> None:
    for name in ("ema_timescale", "slow_timescale_factor", "num_active_tasks", "random_baseline",
                 "early_progress_amplification", "tracker_ema_alpha", "score_range", "use_bidirectional"):
        assert name not in LearningProgressConfig.SAFE
    assert LearningProgressConfig.SAFE.issubset(LearningProgressConfig.model_fields)


def test_differences_report_stored_then_given() -> None:
    a = LearningProgressConfig(score_range=(0.0, 10.0))
    b = LearningProgressConfig(score_range=(-1.0, 1.0))
    assert a.differences(b) == {"score_range": ((0.0, 10.0), (-1.0, 1.0))}
    assert a.differences(a) == {}
    assert math.isclose(b.score_range[1], 1.0)


# --------------------------------------------------------------------------- the config base


POOL_CONFIGS = (LearningProgressConfig, PrioritizedReplayConfig, LearnabilityConfig, UniformConfig)


def test_every_pool_config_takes_the_pool_fields_from_pool_config_and_repeats_none() -> None:
    for cls in POOL_CONFIGS:
        assert issubclass(cls, PoolConfig) and issubclass(cls, AlgorithmConfig)
        own = set(inspect.get_annotations(cls)) - {"SAFE"}
        assert not own & set(PoolConfig.model_fields) - {"algorithm", "max_evictions_per_refresh"}, cls.__name__
        assert PoolConfig.SAFE <= cls.SAFE <= set(cls.model_fields), cls.__name__
    assert set(inspect.get_annotations(UniformConfig)) - {"SAFE"} == {"algorithm", "max_evictions_per_refresh"}
    with pytest.raises(ValidationError, match="score_range"):
        LearnabilityConfig(score_range=(1.0, 0.0))


def test_safe_to_change_is_the_config_class_safe_set() -> None:
    stored = PrioritizedReplayConfig()
    given = PrioritizedReplayConfig(temperature=0.5)
    assert "temperature" in PrioritizedReplayConfig.SAFE
    assert reconcile_hypers(stored, given, "allow_safe", "ns") == given
    with pytest.raises(HyperparameterMismatchError, match="score_update"):
        reconcile_hypers(stored, PrioritizedReplayConfig(score_update="ema"), "allow_safe", "ns")


def test_differences_of_configs_name_fields_either_side_has() -> None:
    assert LearningProgressConfig().differences(LearningProgressConfig(ema_timescale=0.2)) == {
        "ema_timescale": (0.1, 0.2)
    }
    across = UniformConfig().differences(LearnabilityConfig())  # type: ignore[arg-type]
    assert across["algorithm"] == ("uniform", "learnability")
    assert across["top_k"] == (None, 16) and across["max_evictions_per_refresh"] == (0, 4)


def test_parse_config_reads_configs_mappings_and_json() -> None:
    cfg = LearnabilityConfig(top_k=3)
    assert parse_config(cfg) is cfg
    assert parse_config(cfg.model_dump()) == cfg
    assert parse_config(cfg.model_dump_json()) == cfg
    assert parse_config({}) == FrontierConfig()  # the default algorithm
    with pytest.raises(ConfigError, match="mapping"):
        parse_config([1, 2])
    with pytest.raises(ConfigError, match="JSON object"):
        parse_config("{nope")


def test_pool_config_normalizes_scores_with_its_range() -> None:
    assert UniformConfig(score_range=(-1.0, 1.0)).normalize(0.0) == 0.5
    assert LearningProgressConfig().normalize(7) == 1.0


def test_every_config_is_importable_from_the_top_level() -> None:
    import curriculum_redis

    assert curriculum_redis.LearningProgressConfig is LearningProgressConfig
    assert curriculum_redis.UniformConfig is UniformConfig
    assert curriculum_redis.SequentialConfig is SequentialConfig
    assert curriculum_redis.StageCurriculumConfig is SequentialConfig
