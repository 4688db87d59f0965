"""Pieces every training loop of dave shares: errors, batching, the schedule, resuming, one
optimizer step, checkpoint files, the package version."""
from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dave_core.atomic_file import atomic_write

if TYPE_CHECKING:  # distributed imports this module
    from dave_models.distributed import DistributedContext

# Batches per epoch (and per validation) of a --dry-run.
DRY_RUN_BATCHES = 2


class TrainingError(RuntimeError):
    """Training cannot start or continue (bad resume, non-finite loss...)."""


def package_version() -> str:
    """Version of dave_models, for checkpoints and sidecars ('unknown' when not installed)."""
    try:
        return importlib.metadata.version('dave_models')
    except importlib.metadata.PackageNotFoundError:
        return 'unknown'


@contextlib.contextmanager
def output_directory(out: Path) -> Iterator[Path]:
    """--out for one run: a folder this run had to create is removed again when the run fails
    before writing anything into it, so a typo or bad data leaves no empty run folder behind."""
    existed = out.exists()
    try:
        yield out
    except BaseException:
        if not existed and out.is_dir() and not any(out.iterdir()):
            with contextlib.suppress(OSError):  # another torchrun process got there first
                out.rmdir()
        raise


def train_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches; the ragged tail is dropped (a batch of 1 breaks BatchNorm)."""
    order = rng.permutation(n)
    if n <= batch_size:
        return [order]
    return [order[i:i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


# What a checkpoint of either trainer holds, with its type: checked when the file is read, so a
# damaged or hand-made checkpoint is one error naming the key, not a KeyError half-way through.
CHECKPOINT_KEYS: dict[str, type] = {
    'model_config': dict, 'preprocess': dict, 'state_dict': dict, 'metrics': dict, 'epoch': int,
    'history': list, 'data_id': str, 'train_seeds': list, 'val_seeds': list}


def checkpoint_problem(checkpoint: dict[str, Any], keys: dict[str, type] = CHECKPOINT_KEYS) -> str | None:
    """What is missing or of the wrong type in a checkpoint of the right format, or None."""
    for key, kind in keys.items():
        if key not in checkpoint:
            return f'missing key {key!r}'
        if not isinstance(checkpoint[key], kind) or isinstance(checkpoint[key], bool):
            return f'key {key!r} has the wrong type ({type(checkpoint[key]).__name__})'
    return None


def first_line(exc: BaseException) -> str:
    """An exception's text on one line, for a one-line error: its first line (torch's errors run
    over many), with the next one when the first only introduces it ('...:'); at most 300 chars."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
    text = f'{lines[0]} {lines[1]}' if lines[0].endswith(':') and len(lines) > 1 else lines[0]
    return text if len(text) <= 300 else text[:297] + '...'


def read_checkpoint(flag: str, path: str | Path, expected_format: str,
                    keys: dict[str, type] = CHECKPOINT_KEYS) -> dict[str, Any]:
    """A checkpoint of `expected_format` holding `keys` given to `flag`, or one TrainingError
    naming the file."""
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise TrainingError(f'{flag}: {path} not found') from None
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        raise TrainingError(f'{flag}: {path} is not a readable checkpoint ({type(exc).__name__})') from None
    if not isinstance(checkpoint, dict) or checkpoint.get('format') != expected_format:
        raise TrainingError(f'{flag}: {path} is not a {expected_format}')
    problem = checkpoint_problem(checkpoint, keys)
    if problem:
        raise TrainingError(f'{flag}: {path}: {problem}')
    return checkpoint


def load_resume(resume: str | None, out: Path, checkpoint_format: str) -> dict[str, Any] | None:
    """The checkpoint `--resume` names ('' = OUT/last.pt), checked to be of `checkpoint_format`;
    None for a new run. Refuses what would overwrite another run in OUT."""
    existing = out / 'last.pt'
    if resume is None:
        if existing.exists():
            raise TrainingError(f'--out: {out} already holds last.pt; pass --resume to continue it '
                                f'or choose another directory (a new run must not replace it)')
        return None
    path = Path(resume) if resume else existing
    checkpoint = read_checkpoint('--resume', path, checkpoint_format)
    if existing.exists() and path.resolve() != existing.resolve():
        raise TrainingError(f'--resume {path}: --out {out} holds another run (its last.pt would be '
                            f'replaced); resume into an empty directory or the checkpoint\'s own')
    return checkpoint


@dataclass(frozen=True)
class EpochPlan:
    """How many epochs and optimizer steps a run takes, and which batches each epoch gets.

    Every process takes the same number of steps (DDP all-reduces each one), and an epoch's
    batches depend only on the seed and the epoch, so a resumed run sees what it would have seen.
    """

    epochs: int
    steps_per_epoch: int
    samples: int
    batch_size: int
    seed: int

    @classmethod
    def make(cls, samples: int, batch_size: int, seed: int, epochs: int, dry_run: bool,
             ddp: DistributedContext) -> EpochPlan:
        batches = train_batches(samples, batch_size, np.random.default_rng(0))
        steps = len(ddp.shard(batches))
        if steps == 0:
            raise TrainingError(f'{samples} training samples make {len(batches)} batch(es) of --batch-size '
                                f'{batch_size}, fewer than the {ddp.world_size} processes: lower --batch-size')
        if dry_run:
            return cls(1, min(steps, DRY_RUN_BATCHES), samples, batch_size, seed)
        return cls(epochs, steps, samples, batch_size, seed)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def batches(self, epoch: int, ddp: DistributedContext) -> tuple[list[np.ndarray], np.random.Generator]:
        """This process's batches of `epoch` and the generator that drew them (augmentations
        draw from it next)."""
        rng = np.random.default_rng([self.seed, epoch])
        return ddp.shard(train_batches(self.samples, self.batch_size, rng))[:self.steps_per_epoch], rng

    def cosine_schedule(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.CosineAnnealingLR:
        """The learning rate falls along a cosine over the whole run, step by step."""
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.total_steps)


def restore(resume: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            scheduler: torch.optim.lr_scheduler.CosineAnnealingLR,
            plan: EpochPlan, path: str | Path = '',
            keys: dict[str, type] | None = None) -> tuple[list[dict[str, float]], int]:
    """Load a `--resume` checkpoint's weights, optimizer and schedule; its history and last epoch.
    `keys`: what else the trainer reads from it (name -> type), checked first."""
    name = path or 'the checkpoint'
    problem = checkpoint_problem(resume, {'optimizer': dict, 'scheduler': dict, **(keys or {})})
    if problem:
        raise TrainingError(f'--resume: {name}: {problem}')
    try:
        model.load_state_dict(resume['state_dict'])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise TrainingError(f'--resume: {name}: its weights do not fit its model_config '
                            f'({first_line(exc)})') from None
    try:
        optimizer.load_state_dict(resume['optimizer'])
        scheduler.load_state_dict(resume['scheduler'])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise TrainingError(f'--resume: {name}: its optimizer state does not fit this run\'s '
                            f'parameters ({first_line(exc)})') from None
    start_epoch = int(resume['epoch'])
    # --epochs may have grown since the first run, and --batch-size or the number of processes
    # may differ (other steps per epoch): count this plan's steps to here, so its cosine ends with
    # its last epoch. The scheduler steps each rate by a ratio from the current one, so a run that
    # ended at the bottom of its cosine (rate 0) would stay there: set the rate from the closed form.
    scheduler.T_max = plan.total_steps
    scheduler.last_epoch = start_epoch * plan.steps_per_epoch
    progress = math.cos(math.pi * min(scheduler.last_epoch, plan.total_steps) / plan.total_steps)
    for group, base_lr in zip(optimizer.param_groups, scheduler.base_lrs):
        group['lr'] = scheduler.eta_min + (base_lr - scheduler.eta_min) * (1 + progress) / 2
    return list(resume['history']), start_epoch


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                   scheduler: torch.optim.lr_scheduler.LRScheduler, epoch: int) -> float:
    """One step on `loss`, refused when it is not finite (nothing of the epoch is saved then)."""
    if not torch.isfinite(loss):
        raise TrainingError(f'epoch {epoch}: loss became {loss.item()}; nothing was saved '
                            f'for this epoch (try a lower --lr)')
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss.item()


def save_checkpoint(out: Path, checkpoint: dict[str, Any], improved: bool) -> None:
    """OUT/best.pt when the held-out score improved, then OUT/last.pt; each written whole.

    Call it after the epoch's other files (metrics.json, the curve): last.pt is the record that
    the epoch is done, so a run stopped between the writes (Ctrl-C) resumes that epoch again
    instead of holding a last.pt that no metrics.json describes."""
    if improved:
        atomic_write(out / 'best.pt', lambda tmp: torch.save(checkpoint, tmp))
    atomic_write(out / 'last.pt', lambda tmp: torch.save(checkpoint, tmp))


def finish(out: Path, ddp: DistributedContext, history: list[dict[str, float]], start_epoch: int,
           epochs: int) -> dict[str, Any]:
    """The run's OUT/metrics.json once every process is done; an error if no epoch was trained."""
    if not ddp.is_main:
        ddp.barrier()  # rank 0 has written the final metrics.json
        return json.loads((out / 'metrics.json').read_text())
    ddp.barrier()
    if not history or int(history[-1]['epoch']) <= start_epoch:
        raise TrainingError(f'nothing to do: the checkpoint already has {start_epoch} of {epochs} epochs')
    return json.loads((out / 'metrics.json').read_text())
