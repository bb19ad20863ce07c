"""SWiRL training: the step-wise objective (offline and online) and the SFT baseline.

``TrainConfig`` holds every setting; ``Trainer(config, model, tokenizer, trajectories)``
runs the loop. The trainer module (torch, transformers) loads on first use, so
importing the config stays cheap for the CLI.
"""

from __future__ import annotations

from typing import Any

from swirl_agents.train.config import TrainConfig

__all__ = ["TrainConfig", "Trainer"]


def __getattr__(name: str) -> Any:
    if name == "Trainer":
        from swirl_agents.train.trainer import Trainer

        return Trainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
