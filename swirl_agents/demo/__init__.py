"""The CPU demo: a tiny base model with misconceptions, improved by SWiRL, against two controls.

``run_demo(config)`` runs it (``swirl demo`` is the command) and ``run_family`` one
family and seed of it (the ablations reuse a demo run's stages through it);
``misconceptions`` holds the imperfect experts whose trajectories warm the base
model up. The stages themselves are ``swirl_agents.stages``.
"""

from swirl_agents.demo.run import MODELS, run_demo, run_family

__all__ = ["MODELS", "run_demo", "run_family"]
