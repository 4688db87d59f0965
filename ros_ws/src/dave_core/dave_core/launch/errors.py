"""The one exception type of dave's launch-file runner."""
from __future__ import annotations


class LaunchError(Exception):
    """A launch file, argument or process that cannot be run; the message is one line.

    Messages name the culprit first (file:line and action, argument name, package...),
    so `dave launch` can print `str(error)` and nothing else.
    """


def yaml_error_summary(error: Exception) -> str:
    """One line for a PyYAML error: 'line L, column C: problem' when the position is known."""
    problem = getattr(error, 'problem', None) or str(error).splitlines()[0]
    mark = getattr(error, 'problem_mark', None)
    if mark is None:
        return problem
    return f'line {mark.line + 1}, column {mark.column + 1}: {problem}'
