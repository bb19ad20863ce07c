"""Constructor kwargs that let every registered id be made in tests (real-data ids need fixtures)."""

from pathlib import Path
from typing import Any


def env_kwargs(env_id: str, tmp_path: Path) -> dict[str, Any]:
    """Kwargs for ``gymnasium.make(env_id, ...)``; writes dataset fixtures under ``tmp_path``."""
    return {}
