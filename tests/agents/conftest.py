"""Shared fixtures: judged trajectories, a tiny model built on them, and the ``swirl`` command."""

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

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


class CommandRun(NamedTuple):
    """What one ``swirl`` command did: its exit status and what it printed."""

    code: int
    out: str
    err: str


@pytest.fixture
def swirl(capsys) -> Callable[..., CommandRun]:
    """Run ``swirl ARGS...`` in-process, as the console script does; returns a ``CommandRun``."""
    from swirl_agents.cli import main

    def run(*argv: str) -> CommandRun:
        capsys.readouterr()
        code = main([str(arg) for arg in argv])
        printed = capsys.readouterr()
        return CommandRun(code, printed.out, printed.err)

    return run
