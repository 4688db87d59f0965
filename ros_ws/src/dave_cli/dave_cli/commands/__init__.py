"""Subcommands of the `dave` CLI, one module each."""
