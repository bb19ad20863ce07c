"""The tool interface: one named tool with one string argument.

A tool never parses action text (``swirl_envs.actions`` does that) and never
raises on model input: every failure is a ``ToolResult`` with ``ok=False`` whose
text tells the agent what went wrong.

A tool may serve many calls at once (``call_many``); the rollout engine sends every
call a tool gets in one round through it, so a tool with a faster batched path (the
search tool scores all queries against a shared index at once) overrides it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from swirl_envs.task import Task


@dataclass(frozen=True)
class ToolResult:
    """What a tool returns: the text shown to the agent after ``INPUT -> ``."""

    text: str
    ok: bool = True


class Tool(ABC):
    """A tool the agent calls with one string argument.

    Attributes:
        name: Function name for JSON tool calls (``"search"``).
        tag: Tag name for text actions (``"search_query"`` for ``<search_query>``).
        argument: Name of the single string argument in JSON calls (``"query"``).
        description: One line for the tool's JSON schema.
    """

    name: str
    tag: str
    argument: str
    description: str
    argument_description: str = ""

    @abstractmethod
    def __call__(self, argument: str, task: Task) -> ToolResult:
        """Run the tool on ``argument`` in the context of ``task``."""

    def call_many(self, calls: Sequence[tuple[str, Task]]) -> list[ToolResult]:
        """Serve many ``(argument, task)`` calls, in order; one by one unless overridden."""
        return [self(argument, task) for argument, task in calls]

    @property
    def schema(self) -> dict[str, Any]:
        """The OpenAI function-calling schema of this tool."""
        return function_schema(
            self.name, self.description, self.argument, self.argument_description
        )


def function_schema(
    name: str, description: str, argument: str, argument_description: str = ""
) -> dict[str, Any]:
    """Build an OpenAI-style function schema for a one-string-argument function."""
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {argument: {"type": "string", "description": argument_description}},
                "required": [argument],
                "additionalProperties": False,
            },
        },
    }
