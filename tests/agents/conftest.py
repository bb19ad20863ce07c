"""Fixtures shared by the trainer tests: judged trajectories and a tiny model built on them."""

from pathlib import Path

import pytest

from swirl_agents.trajectory import Trajectory
from tests.agents.training_fixtures import judged_trajectories, tiny_model


@pytest.fixture(scope="module")
def trajectories() -> list[Trajectory]:
    """Judged noisy-oracle SynthMath trajectories, shared by a test module."""
    return judged_trajectories()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, trajectories) -> Path:
    """A tiny model built on ``trajectories``' text, shared by a test module."""
    return tiny_model(tmp_path_factory.mktemp("tiny"), trajectories)
