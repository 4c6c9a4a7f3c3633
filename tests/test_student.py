"""The simulated student: learns a level only by practising it, fastest at the frontier, never an
impossible task; and its task space labels every kind of task recognisably."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from curriculum_redis.config import CurriculumConfig
from curriculum_redis.demo.student import (
    SimulatedStudent,
    StudentParams,
    label_kind,
    student_task_generator,
    task_kind,
    train_uniform,
)


def learnable(level: int) -> dict[str, object]:
    return {"kind": "learnable", "level": level}


MASTERED = {"kind": "mastered", "level": 1}
IMPOSSIBLE = {"kind": "impossible", "level": 1}


def practise(student: SimulatedStudent, env_cfg: dict[str, object], episodes: int) -> list[float]:
    return [student.episode(env_cfg) for _ in range(episodes)]


def test_practised_level_is_learned() -> None:
    student = SimulatedStudent(seed=1)
    before = student.success_probability(learnable(1))
    scores = practise(student, learnable(1), 2000)
    after = student.success_probability(learnable(1))
    assert before < 0.2
    assert after > 0.9
    assert np.mean(scores[-200:]) > np.mean(scores[:200]) + 0.5
    assert student.mastered_levels() == 1


def test_unpractised_levels_learn_nothing() -> None:
    student = SimulatedStudent(seed=1)
    level3_before = student.success_probability(learnable(3))
    practise(student, learnable(1), 2000)
    assert student.skills[1:].tolist() == [0.0] * (student.n_levels - 1)
    assert student.success_probability(learnable(3)) == level3_before


def test_learning_level_below_makes_next_level_visible_not_learned() -> None:
    student = SimulatedStudent(seed=1)
    level2_before = student.success_probability(learnable(2))
    practise(student, learnable(1), 2000)
    level2_after = student.success_probability(learnable(2))
    assert level2_before < 0.01
    assert 0.01 < level2_after < 0.5
    assert student.skills[1] == 0.0


def test_level_is_nearly_unlearnable_while_the_level_below_is_unlearned() -> None:
    gated = SimulatedStudent(seed=2)
    practise(gated, learnable(1), 2000)  # level 1 learned, level 2 not
    practise(gated, learnable(3), 2000)
    assert gated.success_probability(learnable(3)) < 0.01
    assert gated.skills[2] < 0.01

    ready = SimulatedStudent(seed=2)
    practise(ready, learnable(1), 2000)
    practise(ready, learnable(2), 2000)
    practise(ready, learnable(3), 2000)
    assert ready.success_probability(learnable(3)) > 0.9
    assert ready.skills[2] > 50 * gated.skills[2]


def test_gain_is_largest_at_intermediate_success() -> None:
    params = StudentParams()
    gains = []
    for p_target in (0.01, 0.5, 0.99):
        student = SimulatedStudent(seed=0, params=params)
        # skill_1 such that level 1 succeeds with probability p_target: sigmoid(k (s + t * 1 - 1)) = p.
        logit = np.log(p_target / (1 - p_target))
        student.skills[0] = logit / params.steepness + 1.0 - params.transfer
        before = float(student.skills[0])
        student.episode(learnable(1))
        gains.append(float(student.skills[0]) - before)
    low, middle, high = gains
    assert middle > 5 * low
    assert middle > 5 * high


def test_impossible_task_always_scores_zero_and_teaches_nothing() -> None:
    student = SimulatedStudent(seed=3)
    assert practise(student, IMPOSSIBLE, 2000) == [0.0] * 2000
    assert student.success_probability(IMPOSSIBLE) == 0.0
    assert not student.skills.any()


def test_mastered_task_succeeds_about_95_percent_and_teaches_nothing() -> None:
    student = SimulatedStudent(seed=4)
    scores = practise(student, MASTERED, 4000)
    assert set(scores) == {0.0, 1.0}
    assert 0.93 < np.mean(scores) < 0.97
    assert student.success_probability(MASTERED) == pytest.approx(0.95)
    assert not student.skills.any()


def test_same_seed_gives_the_same_episodes_and_skills() -> None:
    tasks = [learnable(1), MASTERED, learnable(2), IMPOSSIBLE] * 500
    a, b, c = SimulatedStudent(seed=7), SimulatedStudent(seed=7), SimulatedStudent(seed=8)
    scores_a = [a.episode(t) for t in tasks]
    scores_b = [b.episode(t) for t in tasks]
    scores_c = [c.episode(t) for t in tasks]
    assert scores_a == scores_b
    assert a.skills.tolist() == b.skills.tolist()
    assert scores_a != scores_c


def test_an_explicit_rng_drives_the_draws() -> None:
    a, b = SimulatedStudent(seed=1), SimulatedStudent(seed=2)
    scores_a = [a.episode(MASTERED, np.random.default_rng(5)) for _ in range(50)]
    scores_b = [b.episode(MASTERED, np.random.default_rng(5)) for _ in range(50)]
    assert scores_a == scores_b


def test_students_sharing_a_skill_buffer_are_one_learner() -> None:
    skills = np.zeros(6)
    first = SimulatedStudent(seed=1, skills=skills)
    second = SimulatedStudent(seed=2, skills=skills)
    practise(first, learnable(1), 1000)
    practise(second, learnable(1), 1000)
    assert second.success_probability(learnable(1)) == first.success_probability(learnable(1)) > 0.9


def test_bad_configs_are_refused() -> None:
    student = SimulatedStudent(seed=0, n_levels=3)
    with pytest.raises(ValueError, match="not a student task"):
        student.episode({"kind": "boss", "level": 1})
    with pytest.raises(ValueError, match="not a student task"):
        student.episode({"kind": "learnable", "level": 0})
    with pytest.raises(ValueError, match="beyond"):
        student.episode(learnable(4))
    with pytest.raises(ValueError, match="shape"):
        SimulatedStudent(seed=0, n_levels=3, skills=np.zeros(4))


def test_generator_labels_name_kind_and_level() -> None:
    generator = student_task_generator(n_levels=6, mastered=1, impossible=1)
    tasks = [generator.get_task(i) for i in range(1, 4001)]
    labels = Counter(task.label for task in tasks)
    assert len(labels) == 8
    assert labels["student:kind=learnable,level=3"] > 0
    assert labels["student:kind=impossible,level=1"] > 0
    for task in tasks:
        kind, level = task_kind(task.env_cfg)
        assert task.label == f"student:kind={kind},level={level}"
        assert label_kind(task.label) == kind
    # each (kind, level) bucket is about equally likely
    assert max(labels.values()) < 1.3 * min(labels.values())


def test_impossible_tasks_are_recognisable_by_label() -> None:
    generator = student_task_generator(n_levels=2, mastered=0, impossible=2)
    labels = {generator.get_task(i).label for i in range(1, 500)}
    impossible = {label for label in labels if "impossible" in label}
    assert impossible == {"student:kind=impossible,level=1", "student:kind=impossible,level=2"}
    assert label_kind("maze:size=8") is None


def test_generator_round_trips_through_a_config_file() -> None:
    config = CurriculumConfig(task_generator=student_task_generator(4, 2, 1))
    again = CurriculumConfig.model_validate_json(config.model_dump_json())
    assert [again.task_generator.get_task(i) for i in range(1, 50)] == [
        config.task_generator.get_task(i) for i in range(1, 50)
    ]


def test_uniform_training_spreads_episodes_over_kinds() -> None:
    student = SimulatedStudent(seed=0)
    spent, history = train_uniform(student, student_task_generator(), 8000, np.random.default_rng(0), every=1000)
    assert sum(spent.values()) == 8000
    assert spent["impossible"] / 8000 == pytest.approx(1 / 8, abs=0.03)
    assert spent["mastered"] / 8000 == pytest.approx(1 / 8, abs=0.03)
    assert [done for done, _ in history] == list(range(1000, 8001, 1000))
    assert history[-1][1] == student.mastered_levels()
