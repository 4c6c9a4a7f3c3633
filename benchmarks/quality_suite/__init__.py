"""Curriculum quality on real environments (issue 15): FrozenLake reverse curricula, MiniGrid rooms, the
simulated student. Entry point: ``python benchmarks/quality_envs.py``."""
