"""The `dave` command line: one entry point for every tool of the project."""
