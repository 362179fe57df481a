"""``meshlogs demo``: the whole system from one command, with simulated MeshHook runs.

- :mod:`~meshlogs.demo.seed`: demo users, projects, memberships and workflows (idempotent).
- :mod:`~meshlogs.demo.scenarios`: what a simulated run logs (pure generators).
- :mod:`~meshlogs.demo.simulator`: plays runs through the writer SDK, paced, until stopped.
- :mod:`~meshlogs.demo.runner`: Postgres, migrations, seed, server and simulator in one process.
"""

from __future__ import annotations

from meshlogs.demo.runner import DemoOptions, run_demo
from meshlogs.demo.seed import DEMO_USERS, PROJECTS, DemoWorld, seed_demo
from meshlogs.demo.simulator import Simulator, SimulatorConfig

__all__ = [
    "DEMO_USERS",
    "PROJECTS",
    "DemoOptions",
    "DemoWorld",
    "Simulator",
    "SimulatorConfig",
    "run_demo",
    "seed_demo",
]
