"""Task sources: each module turns a data source into a list of ``Task`` records."""

from swirl_envs.task import Passage, Task

__all__ = ["Passage", "Task"]
