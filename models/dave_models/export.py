"""Export a steering checkpoint to ONNX as a checked artifact: model + sidecar + parity check.

    dave export out/train/steering_v1/last.pt --out models/steering.onnx
    (or: dave export out/train/steering_v1/last.pt --out models/steering.onnx)

Steps: torch.onnx.export -> onnx.checker (full check, with shape inference) -> onnxruntime vs
torch on the same inputs within a stated tolerance -> sidecar X.json via dave_core.model_contract
-> reload through dave_core.onnx_runner.OnnxModel as a runtime would.

Exporter: torch 2.13 defaults to the torch.export-based ("dynamo") exporter, and the TorchScript
one warns that it will be removed, so we use dynamo=True on purpose. Its graph optimizer folds
BatchNorm into the convolutions. external_data=False keeps weights inside the one .onnx file (it
is ~1 MB). Opset 18: the exporter's native opset (no version conversion step), read by
onnxruntime >= 1.14. The batch dimension is fixed at 1: the stack runs one stereo pair at a time.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import pickle
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import torch

from dave_core.atomic_file import fsync_file
from dave_core.model_contract import (ModelContract, OutputSpec, TensorSpec, file_sha256,
                                      sidecar_path_for, write_sidecar)
from dave_core.onnx_runner import MODEL_LOAD_ERRORS, OnnxModel
from dave_core.preprocess import PreprocessSpec
from dave_core.segmentation import (CLASS_IDS, IMAGE_INPUT, LOGITS_OUTPUT, TRAVERSABILITY_TASK,
                                    SegmentationSpec)
from dave_core.steering import CURVATURE_OUTPUT, SPEED_OUTPUT, STEERING_TASK, STEREO_INPUT
from dave_models.steering_net import SteeringNet, SteeringNetConfig
from dave_models.train import CHECKPOINT_FORMAT
from dave_models.traversability_net import TraversabilityNet, TraversabilityNetConfig
from dave_models.training import checkpoint_problem, first_line, package_version

logger = logging.getLogger(__name__)

OPSET = 18
# float32 CPU kernels differ in summation order between torch and onnxruntime (and BatchNorm is
# folded into the conv weights); outputs are ~0.1-1 1/m, so 1e-4 absolute is far below anything
# that could change a steering decision while still catching a wrong graph.
PARITY_ATOL = 1e-4
PARITY_RTOL = 1e-3
PARITY_SAMPLES = 8

OUTPUT_MEANING = {
    CURVATURE_OUTPUT: ('path curvature to follow, + = left turn (REP-103), yaw rate / speed', '1/m'),
    SPEED_OUTPUT: ('target forward speed', 'm/s'),
}


class ExportError(RuntimeError):
    """The checkpoint cannot be exported, or the exported model fails a check."""


@dataclass(frozen=True)
class ExportReport:
    onnx_path: Path
    sidecar_path: Path
    max_abs_diff: float
    parameters: int
    size_bytes: int


# Warns once per torchvision op that torchvision is absent; it is, on purpose (see PLATFORM notes).
_TORCHVISION_NOTICE_LOGGER = 'torch.onnx._internal.exporter._registration'


@contextlib.contextmanager
def _quiet_logger(name: str):
    log = logging.getLogger(name)
    previous = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(previous)



def _read_checkpoint(path: str | os.PathLike) -> dict:
    """Any dave training checkpoint as a dict (tensors and plain data only: weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f'{path}: checkpoint not found')
    with path.open('rb') as stream:
        head = stream.read(2)
    # torch.save writes a zip archive (legacy: a pickle, protocol 2+); anything else is no checkpoint,
    # and torch's error on it is an opaque number.
    if not (head == b'PK' or head[:1] == b'\x80'):
        raise ExportError(f'{path}: not a torch checkpoint (not a file torch.save writes)')
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:
        # torch's weights-only refusal suggests weights_only=False, which would run the file's code.
        reason = ('not a file torch.save wrote with tensors and plain data only'
                  if isinstance(exc, pickle.UnpicklingError) else first_line(exc))
        raise ExportError(f'{path}: not a readable torch checkpoint ({reason})') from None
    if not isinstance(checkpoint, dict):
        raise ExportError(f'{path}: not a dave training checkpoint (no dict inside)')
    from dave_models.traversability_train import CHECKPOINT_FORMAT as TRAVERSABILITY_FORMAT

    if checkpoint.get('format') in (CHECKPOINT_FORMAT, TRAVERSABILITY_FORMAT):
        problem = checkpoint_problem(checkpoint)
        if problem:
            raise ExportError(f'{path}: {problem}')
    return checkpoint


def _rebuild(path: str | os.PathLike, build: Callable[[], torch.nn.Module], checkpoint: dict) -> torch.nn.Module:
    """The network `build` makes from a checkpoint's model_config, with its weights, in eval mode;
    an ExportError naming the file when they do not fit."""
    try:
        model = build()
        model.load_state_dict(checkpoint['state_dict'])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ExportError(f'{path}: its model_config and weights do not make a network '
                          f'({first_line(exc)})') from None
    return model.eval()


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A steering training checkpoint; anything else is an ExportError naming the file."""
    checkpoint = _read_checkpoint(path)
    if checkpoint.get('format') != CHECKPOINT_FORMAT:
        raise ExportError(f'{path}: not a {CHECKPOINT_FORMAT} (key \'format\')')
    if checkpoint.get('task') != STEERING_TASK:
        raise ExportError(f'{path}: task {checkpoint.get("task")!r} cannot be exported here')
    return checkpoint


def sidecar_metrics(metrics: dict) -> dict[str, float | int | str]:
    """Held-out scores and where training stood, from a checkpoint's metrics: finite numbers only
    (timing figures belong to the training log)."""
    return {k: float(v) for k, v in metrics.items()
            if (k.startswith('val_') or k in ('epoch', 'train_loss'))
            and isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)}


def build_contract(checkpoint: dict, config: SteeringNetConfig, name: str,
                   onnx_sha256: str) -> ModelContract:
    """The sidecar for an exported steering checkpoint."""
    spec = PreprocessSpec.from_dict(checkpoint['preprocess'])
    metrics = sidecar_metrics(checkpoint['metrics'])
    metrics['deadband_per_m'] = float(checkpoint['deadband'])
    metrics['val_worlds'] = ','.join(str(s) for s in checkpoint['val_seeds'])
    metrics['train_worlds'] = len(checkpoint['train_seeds'])
    data_id = str(checkpoint['data_id'])
    perception = checkpoint.get('perception') or {}
    if perception.get('data_id'):  # the embedded traversability net learned from other data
        data_id = f'{data_id}+{perception["data_id"]}'
    return ModelContract(
        name=name, task=STEERING_TASK,
        inputs=(TensorSpec(STEREO_INPUT, (1,) + spec.output_shape, 'float32'),),
        outputs=tuple(OutputSpec(n, (1, 1), 'float32', *OUTPUT_MEANING[n]) for n in config.output_names()),
        channel_order=spec.channel_names(), preprocessing=spec.to_dict(), opset=OPSET,
        onnx_sha256=onnx_sha256, training_data_id=data_id, metrics=metrics,
        camera=dict(checkpoint.get('camera') or {}),  # absent in checkpoints older than the field
        created_by=f'dave_models {package_version()} export.py (torch {torch.__version__}, '
                   f'onnx {onnx.__version__})')


def export_checkpoint(checkpoint_path: str | os.PathLike, onnx_path: str | os.PathLike,
                      seed: int = 0) -> ExportReport:
    """Export, check, write the sidecar; a failed check leaves any previous `onnx_path` untouched."""
    checkpoint = load_checkpoint(checkpoint_path)
    try:
        config = SteeringNetConfig.from_dict(checkpoint['model_config'])
        PreprocessSpec.from_dict(checkpoint['preprocess'])
    except (TypeError, ValueError) as exc:
        raise ExportError(f'{checkpoint_path}: {first_line(exc)}') from None
    problem = checkpoint_problem(checkpoint, {'deadband': float})
    if problem:
        raise ExportError(f'{checkpoint_path}: {problem}')
    model = _rebuild(checkpoint_path, lambda: SteeringNet(config), checkpoint)
    onnx_path = _output_path(onnx_path)
    generator = torch.Generator().manual_seed(seed)
    example = torch.randn(1, config.in_channels, config.height, config.width, generator=generator)
    return _export_checked(model, example, onnx_path, STEREO_INPUT, list(config.output_names()),
                           lambda tmp: _parity(model, tmp, config, generator, onnx_path),
                           lambda sha256: build_contract(checkpoint, config, onnx_path.stem, sha256))


def _output_path(onnx_path: str | os.PathLike) -> Path:
    """`--out`, checked to name an .onnx file; its folder is made."""
    onnx_path = Path(onnx_path)
    if onnx_path.suffix != '.onnx':
        raise ExportError(f'--out {onnx_path}: the model file name must end in .onnx')
    for path in (onnx_path, sidecar_path_for(onnx_path)):  # found now, not after the export
        if path.is_dir():
            raise ExportError(f'--out {onnx_path}: {path} is a directory')
    try:
        onnx_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f'--out {onnx_path}: cannot create its folder ({exc.strerror})') from None
    return onnx_path


def _export_checked(model: torch.nn.Module, example: torch.Tensor, onnx_path: Path, input_name: str,
                    output_names: list[str], parity: Callable[[Path], float],
                    contract_for: Callable[[str], ModelContract]) -> ExportReport:
    """Export into a temporary folder beside `onnx_path`: onnx.checker, `parity` (max |onnxruntime -
    torch|), the sidecar `contract_for(sha256 of the graph)`, then a load of the pair exactly as the
    stack will load it. Only a pair that passed all of it replaces the previous model and sidecar."""
    sidecar = sidecar_path_for(onnx_path)
    with tempfile.TemporaryDirectory(dir=onnx_path.parent, prefix=f'.{onnx_path.name}.') as folder:
        tmp = Path(folder) / onnx_path.name
        _torch_export(model, example, tmp, input_name, output_names)
        onnx.checker.check_model(onnx.load(str(tmp)), full_check=True)
        max_diff = parity(tmp)
        contract = contract_for(file_sha256(tmp))  # of the bytes that will be shipped
        tmp_sidecar = write_sidecar(contract, sidecar_path_for(tmp))
        try:
            OnnxModel.load(tmp, expected_task=contract.task)
        except MODEL_LOAD_ERRORS as exc:  # name the files it was to become, not the temporary ones
            raise ExportError(f'{onnx_path}: the exported model does not load with its sidecar: '
                              f'{str(exc).replace(str(tmp), str(onnx_path))}') from None
        fsync_file(tmp)
        _replace_pair(tmp, tmp_sidecar, onnx_path, sidecar, Path(folder) / 'previous.onnx')
    report = ExportReport(onnx_path, sidecar, max_diff, model.num_parameters(), onnx_path.stat().st_size)
    logger.info('exported %s (%d parameters, %.2f MiB), onnxruntime vs torch max |diff| %.2e',
                onnx_path, report.parameters, report.size_bytes / 2**20, max_diff)
    return report


def _replace_pair(new_model: Path, new_sidecar: Path, model: Path, sidecar: Path, keep: Path) -> None:
    """Move the checked pair into place: two atomic renames. Should the second fail (a sidecar
    that cannot be replaced), the previous model goes back (kept as a hard link at `keep`), so
    the files on disk are always a pair that loads."""
    previous = None
    if model.exists():
        try:
            os.link(model, keep)
        except OSError:  # a file system without hard links
            shutil.copy2(model, keep)
        previous = keep
    os.replace(new_model, model)
    try:
        os.replace(new_sidecar, sidecar)
    except OSError:
        if previous is not None:
            os.replace(previous, model)
        else:
            model.unlink()
        raise


def _parity(model: SteeringNet, path: Path, config: SteeringNetConfig, generator: torch.Generator,
            target: Path) -> float:
    """Max |onnxruntime - torch| over random inputs of the graph at `path`; beyond the tolerance an
    ExportError naming `target`, the file it was to become."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    worst = 0.0
    for _ in range(PARITY_SAMPLES):
        x = torch.randn(1, config.in_channels, config.height, config.width, generator=generator)
        with torch.no_grad():
            expected = [t.numpy() for t in model(x)]
        actual = session.run(None, {STEREO_INPUT: x.numpy()})
        for name, e, a in zip(config.output_names(), expected, actual):
            if a.shape != e.shape:
                raise ExportError(f'{target}: output {name!r} has shape {a.shape}, torch gives {e.shape}')
            if not np.allclose(a, e, atol=PARITY_ATOL, rtol=PARITY_RTOL):
                raise ExportError(f'{target}: output {name!r} differs from torch by '
                                  f'{np.max(np.abs(a - e)):.3g} (tolerance {PARITY_ATOL} + '
                                  f'{PARITY_RTOL} x |value|)')
            worst = max(worst, float(np.max(np.abs(a - e))))
    return worst


# ---------------------------------------------------------------- traversability

# Logits are ~1-20 in magnitude; 1e-3 absolute is far below any margin between classes, and the
# argmax (what the stack publishes) must agree on all but a few tie pixels.
SEGMENTATION_PARITY_ATOL = 1e-3
SEGMENTATION_PARITY_RTOL = 1e-3
SEGMENTATION_MAX_ARGMAX_MISMATCH = 1e-3  # share of pixels


def _traversability_parity(model: torch.nn.Module, path: Path, shape: tuple[int, ...],
                           generator: torch.Generator, target: Path) -> float:
    """Max |onnxruntime - torch| of the logits over random inputs of the graph at `path`; beyond
    the tolerance an ExportError naming `target`, the file it was to become."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    worst = 0.0
    for _ in range(PARITY_SAMPLES):
        x = torch.randn(*shape, generator=generator)
        with torch.no_grad():
            expected = model(x).numpy()
        actual = session.run([LOGITS_OUTPUT], {IMAGE_INPUT: x.numpy()})[0]
        if actual.shape != expected.shape:
            raise ExportError(f'{target}: output {LOGITS_OUTPUT!r} has shape {actual.shape}, torch '
                              f'gives {expected.shape}')
        if not np.allclose(actual, expected, atol=SEGMENTATION_PARITY_ATOL, rtol=SEGMENTATION_PARITY_RTOL):
            raise ExportError(f'{target}: output {LOGITS_OUTPUT!r} differs from torch by '
                              f'{np.max(np.abs(actual - expected)):.3g} (tolerance '
                              f'{SEGMENTATION_PARITY_ATOL} + {SEGMENTATION_PARITY_RTOL} x |value|)')
        mismatch = float(np.mean(actual.argmax(1) != expected.argmax(1)))
        if mismatch > SEGMENTATION_MAX_ARGMAX_MISMATCH:
            raise ExportError(f'{target}: onnxruntime and torch pick different classes on '
                              f'{mismatch:.2%} of the pixels')
        worst = max(worst, float(np.max(np.abs(actual - expected))))
    return worst


def export_traversability_checkpoint(checkpoint_path: str | os.PathLike, onnx_path: str | os.PathLike,
                                     seed: int = 0) -> ExportReport:
    """Export a traversability checkpoint: ONNX, checker, parity, sidecar, reload as the stack does."""
    from dave_models.traversability_train import CHECKPOINT_FORMAT as TRAVERSABILITY_FORMAT

    checkpoint = _read_checkpoint(checkpoint_path)
    if checkpoint.get('format') != TRAVERSABILITY_FORMAT:
        raise ExportError(f'{checkpoint_path}: not a {TRAVERSABILITY_FORMAT} (key \'format\')')
    try:
        config = TraversabilityNetConfig.from_dict(checkpoint['model_config'])
        spec = SegmentationSpec.from_dict(checkpoint['preprocess'])
    except (TypeError, ValueError) as exc:
        raise ExportError(f'{checkpoint_path}: {first_line(exc)}') from None
    problem = checkpoint_problem(checkpoint, {'label_source': str, 'camera': dict})
    if problem:
        raise ExportError(f'{checkpoint_path}: {problem}')
    model = _rebuild(checkpoint_path, lambda: TraversabilityNet(config), checkpoint)
    onnx_path = _output_path(onnx_path)
    shape = (1, config.in_channels, config.height, config.width)
    generator = torch.Generator().manual_seed(seed)
    example = torch.randn(*shape, generator=generator)
    return _export_checked(model, example, onnx_path, IMAGE_INPUT, [LOGITS_OUTPUT],
                           lambda tmp: _traversability_parity(model, tmp, shape, generator, onnx_path),
                           lambda sha256: traversability_contract(checkpoint, config, spec, onnx_path.stem, sha256))


def traversability_contract(checkpoint: dict, config: TraversabilityNetConfig, spec: SegmentationSpec,
                            name: str, sha256: str) -> ModelContract:
    """The sidecar for an exported traversability checkpoint."""
    shape = (1, config.in_channels, config.height, config.width)
    metrics: dict[str, float | int | str] = sidecar_metrics(checkpoint['metrics'])
    metrics['val_worlds'] = ','.join(str(s) for s in checkpoint['val_seeds'])
    metrics['train_worlds'] = len(checkpoint['train_seeds'])
    metrics['label_source'] = str(checkpoint['label_source'])
    return ModelContract(
        name=name, task=TRAVERSABILITY_TASK,
        inputs=(TensorSpec(IMAGE_INPUT, shape, 'float32'),),
        outputs=(OutputSpec(LOGITS_OUTPUT, (1, config.num_classes, config.height, config.width),
                            'float32', 'per-pixel class logits at network size; argmax = class id '
                            '(class_ids), upsample to the camera size', ''),),
        channel_order=spec.channel_names(), preprocessing=spec.to_dict(), opset=OPSET,
        onnx_sha256=sha256, training_data_id=str(checkpoint['data_id']),
        metrics=metrics, class_ids=dict(checkpoint.get('class_ids') or CLASS_IDS),
        camera=dict(checkpoint['camera']),
        created_by=f'dave_models {package_version()} export.py (torch {torch.__version__}, '
                   f'onnx {onnx.__version__})')


# checkpoint 'task' -> exporter. Each exporter checks its own checkpoint format.
EXPORTERS: dict[str, Callable[..., ExportReport]] = {
    STEERING_TASK: export_checkpoint,
    'traversability': export_traversability_checkpoint,
}


def export_any(checkpoint_path: str | os.PathLike, onnx_path: str | os.PathLike,
               seed: int = 0) -> ExportReport:
    """Export a checkpoint of any task, chosen by its 'task' key."""
    task = _read_checkpoint(checkpoint_path).get('task')
    exporter = EXPORTERS.get(task) if isinstance(task, str) else None
    if exporter is None:
        raise ExportError(f'{checkpoint_path}: key \'task\' is {task!r}; exportable tasks: '
                          f'{sorted(EXPORTERS)}')
    return exporter(checkpoint_path, onnx_path, seed=seed)


def run(args: argparse.Namespace) -> int:
    """`dave export`: export, check, write the sidecar; errors are one logged line, exit code 2."""
    try:
        report = export_any(args.checkpoint, args.out)
    except (ExportError, ValueError, *MODEL_LOAD_ERRORS) as exc:
        logger.error('%s', exc)
        return 2
    logger.info('wrote %s and %s', report.onnx_path, report.sidecar_path)
    return 0


def _torch_export(model: torch.nn.Module, example: torch.Tensor, path: Path, input_name: str,
                  output_names: list[str]) -> None:
    """torch.onnx.export (dynamo, one file, opset OPSET) of `model` traced on `example`."""
    with warnings.catch_warnings(), _quiet_logger(_TORCHVISION_NOTICE_LOGGER):
        # torch.export's internal deprecation notices are not ours to fix; errors still raise.
        warnings.simplefilter('ignore', category=FutureWarning)
        warnings.simplefilter('ignore', category=DeprecationWarning)
        torch.onnx.export(model, (example,), str(path), dynamo=True, external_data=False,
                          optimize=True, opset_version=OPSET, input_names=[input_name],
                          output_names=output_names, verbose=False)
    _strip_trace_metadata(path)


def _strip_trace_metadata(path: Path) -> None:
    """Drop the exporter's per-node debugging metadata (Python stack traces, FX node text).

    They hold the absolute paths of the machine that exported, so two exports of the same
    checkpoint from two clones differed in their bytes (and sha256) and a shipped model told
    where its author kept the source. The graph, weights and names are untouched."""
    model = onnx.load(str(path))

    def strip(graph: onnx.GraphProto) -> None:
        del graph.metadata_props[:]
        for node in graph.node:
            del node.metadata_props[:]
            for attribute in node.attribute:  # subgraphs (If/Loop bodies), if any
                if attribute.type == onnx.AttributeProto.GRAPH:
                    strip(attribute.g)
                for sub in attribute.graphs:
                    strip(sub)
        for value in [*graph.input, *graph.output, *graph.value_info, *graph.initializer]:
            del value.metadata_props[:]

    strip(model.graph)
    for function in model.functions:
        for node in function.node:
            del node.metadata_props[:]
    onnx.save(model, str(path))
