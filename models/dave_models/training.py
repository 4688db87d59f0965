"""Pieces every training loop of dave shares: errors, batching, resuming, the package version."""
from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch


class TrainingError(RuntimeError):
    """Training cannot start or continue (bad resume, non-finite loss...)."""


def package_version() -> str:
    """Version of dave_models, for checkpoints and sidecars ('unknown' when not installed)."""
    try:
        return importlib.metadata.version('dave_models')
    except importlib.metadata.PackageNotFoundError:
        return 'unknown'


def train_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches; the ragged tail is dropped (a batch of 1 breaks BatchNorm)."""
    order = rng.permutation(n)
    if n <= batch_size:
        return [order]
    return [order[i:i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


def load_resume(resume: str | None, out: Path, checkpoint_format: str) -> dict[str, Any] | None:
    """The checkpoint `--resume` names ('' = OUT/last.pt), checked to be of `checkpoint_format`."""
    if resume is None:
        return None
    path = Path(resume) if resume else out / 'last.pt'
    if not path.is_file():
        raise TrainingError(f'--resume: checkpoint {path} not found')
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get('format') != checkpoint_format:
        raise TrainingError(f'--resume: {path} is not a {checkpoint_format}')
    return checkpoint
