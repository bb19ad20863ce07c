"""The CPU demo: a tiny base model with misconceptions, improved by SWiRL, against two controls.

``run_demo(config)`` runs it (``swirl demo`` is the command); ``misconceptions`` holds
the imperfect experts whose trajectories warm the base model up.
"""

from swirl_agents.demo.run import MODELS, run_demo

__all__ = ["MODELS", "run_demo"]
