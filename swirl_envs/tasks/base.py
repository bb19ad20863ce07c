"""The old home of the Task record, kept so code written against it still imports.

New code imports ``from swirl_envs import Task, Passage`` (defined in ``swirl_envs.task``).
"""

from swirl_envs.task import Passage, Task

__all__ = ["Passage", "Task"]
