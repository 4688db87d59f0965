"""Where the project's shipped files are when running from a source checkout."""
from __future__ import annotations

from pathlib import Path


def project_root() -> Path | None:
    """The checkout holding launch/ and models/ (editable install), or None when installed elsewhere."""
    for parent in Path(__file__).resolve().parents:
        if (parent / 'launch' / 'sim.launch.yaml').is_file() and (parent / 'models').is_dir():
            return parent
    return None


def project_file(relative: str) -> Path:
    """A file of the checkout, e.g. 'launch/sim.launch.yaml'; FileNotFoundError says what to pass instead."""
    root = project_root()
    if root is None or not (root / relative).exists():
        raise FileNotFoundError(f'{relative} not found next to this installation of dave_core; '
                                f'pass its path explicitly')
    return root / relative
