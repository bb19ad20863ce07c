"""Subcommands of the ``swirl`` CLI, one module each."""
