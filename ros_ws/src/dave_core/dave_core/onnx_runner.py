"""One ONNX runner for every dave model: checked contract, explicit providers, checked tensors.

`OnnxModel.load` refuses a model whose sidecar is missing, stale (sha256) or disagrees with
the graph's own input/output names, shapes and dtypes, then does one warm-up run so the first
real frame does not pay for lazy initialization. `run` checks every input before onnxruntime
sees it, so a wrong tensor is one clear error instead of an onnxruntime stack trace.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import onnxruntime as ort

from dave_core.model_contract import ModelContract, ModelContractError, load_contract

logger = logging.getLogger(__name__)

# Fastest first; CPU is always the fallback. Used when providers='auto'.
PROVIDER_PREFERENCE = ('TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider')
CPU_PROVIDER = 'CPUExecutionProvider'

_ORT_TYPES = {
    'tensor(float)': 'float32', 'tensor(float16)': 'float16', 'tensor(double)': 'float64',
    'tensor(uint8)': 'uint8', 'tensor(int8)': 'int8', 'tensor(int32)': 'int32',
    'tensor(int64)': 'int64', 'tensor(bool)': 'bool',
}


# More threads than any onboard computer has cores: 100,000 hung onnxruntime's thread pool
# start-up (unkillable by SIGINT), 2**40 overflowed its int.
MAX_INTRA_OP_THREADS = 64


class OnnxModelError(RuntimeError):
    """The .onnx file cannot be opened or run, or a tensor does not fit the model."""


# What a caller (e.g. a node) catches around OnnxModel.load.
MODEL_LOAD_ERRORS = (OnnxModelError, ModelContractError)


@dataclass(frozen=True)
class SessionTensor:
    """A tensor as the onnxruntime session reports it (symbolic dims are str or None)."""
    name: str
    shape: tuple[int | str | None, ...]
    dtype: str


def select_providers(requested: Sequence[str] | str | None,
                     available: Sequence[str]) -> list[str]:
    """Requested providers this onnxruntime build has, in order, with CPU last as fallback.

    None means CPU only; 'auto' means PROVIDER_PREFERENCE. Unavailable ones are dropped with a
    warning, so a CUDA request on a CPU-only machine still runs (slowly) instead of failing.
    """
    if requested is None:
        requested = [CPU_PROVIDER]
    elif requested == 'auto':
        requested = list(PROVIDER_PREFERENCE)
    elif isinstance(requested, str):
        requested = [requested]
    chosen = []
    for name in requested:
        if name in available:
            if name not in chosen:
                chosen.append(name)
        else:
            logger.warning('onnxruntime provider %s requested but not available (have: %s)',
                           name, ', '.join(available))
    if CPU_PROVIDER not in chosen:
        chosen.append(CPU_PROVIDER)
    return chosen


def _session_tensors(args) -> tuple[SessionTensor, ...]:
    return tuple(SessionTensor(a.name, tuple(a.shape), _ORT_TYPES.get(a.type, a.type)) for a in args)


def _check_against_contract(path: Path, kind: str, session: Sequence[SessionTensor],
                            contract_specs: Sequence) -> None:
    """Names (in order), ranks, fixed dims and dtypes of the graph must match the sidecar."""
    session_names = [t.name for t in session]
    contract_names = [t.name for t in contract_specs]
    if session_names != contract_names:
        raise ModelContractError(f'{path}: {kind} names {session_names} differ from the sidecar\'s '
                                 f'{contract_names}')
    for actual, declared in zip(session, contract_specs):
        if actual.dtype != declared.dtype:
            raise ModelContractError(f'{path}: {kind} {actual.name!r} has dtype {actual.dtype}, '
                                     f'sidecar says {declared.dtype}')
        if len(actual.shape) != len(declared.shape) or any(
                isinstance(a, int) and isinstance(d, int) and a != d
                for a, d in zip(actual.shape, declared.shape)):
            raise ModelContractError(f'{path}: {kind} {actual.name!r} has shape {list(actual.shape)}, '
                                     f'sidecar says {list(declared.shape)}')


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class OnnxModel:
    """A loaded, contract-checked onnxruntime session. Build with `OnnxModel.load`."""

    def __init__(self, path: Path, contract: ModelContract, session: ort.InferenceSession,
                 inputs: tuple[SessionTensor, ...], outputs: tuple[SessionTensor, ...]):
        self.path = path
        self.contract = contract
        self.session = session
        self.inputs = inputs
        self.outputs = outputs
        self.providers: list[str] = list(session.get_providers())
        self.warmup_ms = float('nan')

    @classmethod
    def load(cls, onnx_path: str | os.PathLike, expected_task: str | None = None,
             providers: Sequence[str] | str | None = None,
             intra_op_threads: int = 1) -> 'OnnxModel':
        """Verify the sidecar, open the session, check it against the sidecar, warm up once.

        `providers`: None (CPU), 'auto' (TensorRT > CUDA > CPU as available), or a list of names.
        `intra_op_threads`: 1 by default; the stack runs several models and nodes on few cores.
        Measured here for the steering net: 0.85 ms with 1 thread, 0.6 ms with 2 (2 cores).
        """
        path = Path(onnx_path)
        if not path.is_file():
            raise OnnxModelError(f'{path}: model file not found')
        if (not isinstance(intra_op_threads, int) or isinstance(intra_op_threads, bool)
                or not 1 <= intra_op_threads <= MAX_INTRA_OP_THREADS):
            raise ValueError(f'intra_op_threads: expected an integer in 1..{MAX_INTRA_OP_THREADS}, '
                             f'got {intra_op_threads!r}')
        contract = load_contract(path, expected_task)
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: onnxruntime logs go to stderr, not our logger
        chosen = select_providers(providers, ort.get_available_providers())
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            raise OnnxModelError(f'{path}: onnxruntime cannot load it as an ONNX model '
                                 f'({_first_line(exc)})') from None
        inputs = _session_tensors(session.get_inputs())
        outputs = _session_tensors(session.get_outputs())
        _check_against_contract(path, 'input', inputs, contract.inputs)
        _check_against_contract(path, 'output', outputs, contract.outputs)
        model = cls(path, contract, session, inputs, outputs)
        model._warm_up()
        logger.info('loaded %s (%s) on %s, warm-up %.1f ms', path.name, contract.task,
                    ','.join(model.providers), model.warmup_ms)
        return model

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def _warm_up(self) -> None:
        feed = {}
        for tensor, declared in zip(self.inputs, self.contract.inputs):
            # Symbolic dims take the sidecar's size when it is fixed there, else 1.
            shape = [a if isinstance(a, int) else (d if isinstance(d, int) else 1)
                     for a, d in zip(tensor.shape, declared.shape)]
            feed[tensor.name] = np.zeros(shape, dtype=tensor.dtype)
        start = time.perf_counter()
        self.run(feed)
        self.warmup_ms = (time.perf_counter() - start) * 1e3

    def check_inputs(self, inputs: Mapping[str, np.ndarray]) -> None:
        """Raise OnnxModelError naming the first input that does not fit the model."""
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise OnnxModelError(f'{self.path.name}: missing input {missing[0]!r} '
                                 f'(model inputs: {self.input_names})')
        unexpected = sorted(set(inputs) - set(self.input_names))
        if unexpected:
            raise OnnxModelError(f'{self.path.name}: unexpected input {unexpected[0]!r} '
                                 f'(model inputs: {self.input_names})')
        for tensor in self.inputs:
            array = inputs[tensor.name]
            if not isinstance(array, np.ndarray):
                raise OnnxModelError(f'{self.path.name}: input {tensor.name!r} must be a numpy '
                                     f'array, got {type(array).__name__}')
            if array.dtype != np.dtype(tensor.dtype):
                raise OnnxModelError(f'{self.path.name}: input {tensor.name!r} must be '
                                     f'{tensor.dtype}, got {array.dtype}')
            if array.ndim != len(tensor.shape) or any(
                    isinstance(d, int) and d != n for d, n in zip(tensor.shape, array.shape)):
                raise OnnxModelError(f'{self.path.name}: input {tensor.name!r} must have shape '
                                     f'{list(tensor.shape)}, got {list(array.shape)}')

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on checked inputs; returns {output name: array}."""
        self.check_inputs(inputs)
        try:
            results = self.session.run(None, dict(inputs))
        except Exception as exc:
            raise OnnxModelError(f'{self.path.name}: inference failed ({_first_line(exc)})') from None
        return dict(zip(self.output_names, results))
