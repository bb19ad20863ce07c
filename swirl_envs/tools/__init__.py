"""Tools the agent calls: a safe calculator and BM25 search."""

from swirl_envs.tools.base import Tool, ToolResult

__all__ = ["Tool", "ToolResult"]
