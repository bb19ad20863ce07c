"""Gymnasium text environments for multi-step reasoning and tool use (SWiRL).

Importing this package registers every environment id; nothing heavy happens at
import (entry points are strings, data loads when an env is made)::

    import gymnasium as gym
    import swirl_envs  # or gym.register_envs(swirl_envs), or "swirl_envs:swirl/SynthMath-v0"

    env = gym.make("swirl/SynthMath-v0")

It also exports the ``Task`` record (the one seam between data and env), its
``Passage``, and ``check_tasks``, which replays every task's gold path through an env
(beside gymnasium's ``check_env``, which checks the API).
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from swirl_envs.checks import TaskCheckError, check_tasks
from swirl_envs.task import Passage, Task

__version__ = "0.1.0"
__all__ = ["ENV_IDS", "Passage", "Task", "TaskCheckError", "check_tasks"]

ENV_IDS = {
    "swirl/SynthMath-v0": "swirl_envs.tasks.synth_math:SynthMathEnv",
    "swirl/SynthHop-v0": "swirl_envs.tasks.synth_hop:SynthHopEnv",
    "swirl/GSM8K-v0": "swirl_envs.tasks.gsm8k:GSM8KEnv",
    "swirl/HotPotQA-v0": "swirl_envs.tasks.hotpotqa:HotPotQAEnv",
    "swirl/MuSiQue-v0": "swirl_envs.tasks.musique:MuSiQueEnv",
    "swirl/BeerQA-v0": "swirl_envs.tasks.beerqa:BeerQAEnv",
    "swirl/CofCA-v0": "swirl_envs.tasks.cofca:CofCAEnv",
}

for _env_id, _entry_point in ENV_IDS.items():
    if _env_id not in registry:
        register(id=_env_id, entry_point=_entry_point, disable_env_checker=False)

# A remote env served by `swirl serve`; it needs a url, so it is not in ENV_IDS (made in tests).
if "swirl/Remote-v0" not in registry:
    register(id="swirl/Remote-v0", entry_point="swirl_envs.client:RemoteEnv")
