"""The demo: workers train a simulated student through one shared curriculum.

Not part of the library's core (which never imports it): the simulated student (:mod:`.student`), a private
redis-server (:mod:`.server`, :mod:`.binaries`), and the demo itself (:mod:`.run`, :mod:`.workers`,
:mod:`.progress`, :mod:`.report`), which ``curriculum-redis demo`` runs.
"""

from __future__ import annotations

from curriculum_redis.demo.report import DemoReport
from curriculum_redis.demo.run import DEFAULT_EPISODES, PACE, DemoError, DemoOptions, run_demo
from curriculum_redis.shutdown import EXIT_INTERRUPTED

__all__ = ["DEFAULT_EPISODES", "EXIT_INTERRUPTED", "PACE", "DemoError", "DemoOptions", "DemoReport", "run_demo"]
