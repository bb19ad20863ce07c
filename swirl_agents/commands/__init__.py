"""Subcommands of the ``swirl`` CLI, one module each: argument parsing and one stage call."""
