"""The JSON sidecar that travels with every shipped model: `X.onnx` has its contract in `X.json`.

The contract says what the network expects and returns (tensor names, shapes, dtypes, channel
order, preprocessing, output units, class ids), where it came from (training data id, metrics,
creator) and which exact .onnx bytes it describes (sha256). Loading checks all of it, so a
stale or hand-edited sidecar fails loudly with one line naming the file and the field.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from dave_core.atomic_file import atomic_write_text
from dave_core.preprocess import PreprocessSpec

SCHEMA = 'dave-model-contract'
SCHEMA_VERSION = 1
TASKS = ('steering', 'traversability')
SIDECAR_SUFFIX = '.json'
_SHA256_RE = re.compile(r'^[0-9a-f]{64}$')


class ModelContractError(ValueError):
    """A sidecar is missing, malformed, or does not match its model."""


@dataclass(frozen=True)
class TensorSpec:
    """One network input: name, shape (ints, or strings for symbolic dims) and numpy dtype name."""
    name: str
    shape: tuple[int | str, ...]
    dtype: str


@dataclass(frozen=True)
class OutputSpec:
    """One network output, with what it means and its physical units (e.g. '1/m')."""
    name: str
    shape: tuple[int | str, ...]
    dtype: str
    meaning: str
    units: str


# What a task's preprocessing makes of an image: the input tensor's shape without the batch
# dimension, and its channel names in tensor order.
PreprocessedLayout = tuple[tuple[int, ...], tuple[str, ...]]


def _complete(spec_cls: type, data: Mapping[str, Any]) -> Mapping[str, Any]:
    """`data` if it states every field of `spec_cls`: exporters write them all, and a default in
    place of a missing mean or std is not what the network was trained with."""
    missing = [f.name for f in dataclasses.fields(spec_cls) if f.name not in data]
    if missing:
        raise ValueError(f'missing key {missing[0]!r} (a sidecar states every preprocessing field)')
    return data


def _steering_preprocessing(data: Mapping[str, Any]) -> PreprocessedLayout:
    spec = PreprocessSpec.from_dict(_complete(PreprocessSpec, data))
    return spec.output_shape, spec.channel_names()


def _traversability_preprocessing(data: Mapping[str, Any]) -> PreprocessedLayout:
    # Imported here: dave_core.segmentation imports the ONNX runner, which imports this module.
    from dave_core.segmentation import SegmentationSpec
    spec = SegmentationSpec.from_dict(_complete(SegmentationSpec, data))
    return spec.input_shape, spec.channel_names()


# task -> validator of its `preprocessing` dict (raises ValueError), returning what it makes.
PREPROCESSING_VALIDATORS: dict[str, Callable[[Mapping[str, Any]], PreprocessedLayout]] = {
    'steering': _steering_preprocessing,
    'traversability': _traversability_preprocessing,
}


@dataclass(frozen=True)
class ModelContract:
    """Everything a runtime must know to feed a model and read its outputs."""
    name: str
    task: str  # one of TASKS
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[OutputSpec, ...]
    channel_order: tuple[str, ...]  # channel names of the first input, in tensor order
    preprocessing: dict[str, Any]  # e.g. PreprocessSpec.to_dict() for steering
    opset: int
    onnx_sha256: str
    training_data_id: str
    metrics: dict[str, float | int | str]
    created_by: str  # e.g. 'dave_models 0.1.0 (export.py)'
    class_ids: dict[str, int] = field(default_factory=dict)  # segmentation only: name -> id
    # The camera the training images came from: width, height (pixels), optionally fx, baseline_m.
    # Runtimes refuse images of another size: resizing would silently change the field of view.
    camera: dict[str, float | int] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, with the schema tag first."""
        data: dict[str, Any] = {'schema': SCHEMA}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ('inputs', 'outputs'):
                value = [{k: (list(v) if k == 'shape' else v) for k, v in vars(t).items()}
                         for t in value]
            elif isinstance(value, tuple):
                value = list(value)
            data[f.name] = value
        return data


def _fail(field_name: str, message: str) -> ModelContractError:
    return ModelContractError(f'field {field_name!r}: {message}')


def _check_str(value: Any, name: str, allow_empty: bool = False) -> None:
    if not isinstance(value, str) or (not allow_empty and not value):
        raise _fail(name, f'expected a non-empty string, got {value!r}')


def _check_shape(shape: Any, name: str) -> None:
    if not isinstance(shape, tuple) or not shape:
        raise _fail(name, f'expected a non-empty list of dims, got {shape!r}')
    for dim in shape:
        ok_int = isinstance(dim, int) and not isinstance(dim, bool) and dim > 0
        if not (ok_int or (isinstance(dim, str) and dim)):
            raise _fail(name, f'dim {dim!r} is neither a positive int nor a symbolic name')


# Tensor element types a sidecar may name: plain numpy names only (np.dtype() would also parse
# struct specs such as 'f4,(' and raise SyntaxError on them).
DTYPES = ('float16', 'float32', 'float64', 'uint8', 'int8', 'int32', 'int64', 'bool')


def _check_dtype(dtype: Any, name: str) -> None:
    _check_str(dtype, name)
    if dtype not in DTYPES:
        raise _fail(name, f'unknown dtype {dtype!r} (expected one of {", ".join(DTYPES)})')


def _validate(c: ModelContract) -> None:
    """Raise ModelContractError naming the first bad field."""
    if type(c.schema_version) is not int or c.schema_version != SCHEMA_VERSION:  # True == 1, 1.0 == 1
        raise _fail('schema_version', f'{c.schema_version!r} is not supported (this code reads '
                    f'version {SCHEMA_VERSION})')
    _check_str(c.name, 'name')
    if c.task not in TASKS:
        raise _fail('task', f'unknown task {c.task!r}, expected one of {list(TASKS)}')
    for group, specs, kind in (('inputs', c.inputs, TensorSpec), ('outputs', c.outputs, OutputSpec)):
        if not isinstance(specs, tuple) or not specs:
            raise _fail(group, 'expected a non-empty list')
        names = set()
        for i, spec in enumerate(specs):
            where = f'{group}[{i}]'
            if not isinstance(spec, kind):
                raise _fail(where, f'expected {kind.__name__}, got {type(spec).__name__}')
            _check_str(spec.name, f'{where}.name')
            if spec.name in names:
                raise _fail(f'{where}.name', f'duplicate name {spec.name!r}')
            names.add(spec.name)
            _check_shape(spec.shape, f'{where}.shape')
            _check_dtype(spec.dtype, f'{where}.dtype')
            if kind is OutputSpec:
                _check_str(spec.meaning, f'{where}.meaning')
                _check_str(spec.units, f'{where}.units', allow_empty=True)
    if not isinstance(c.channel_order, tuple) or not all(
            isinstance(n, str) and n for n in c.channel_order):
        raise _fail('channel_order', f'expected a list of channel names, got {c.channel_order!r}')
    first_shape = c.inputs[0].shape
    if len(first_shape) >= 2 and isinstance(first_shape[1], int) \
            and len(c.channel_order) != first_shape[1]:
        raise _fail('channel_order', f'{len(c.channel_order)} names for {first_shape[1]} channels '
                    f'of input {c.inputs[0].name!r}')
    if not isinstance(c.preprocessing, dict):
        raise _fail('preprocessing', f'expected a mapping, got {type(c.preprocessing).__name__}')
    validator = PREPROCESSING_VALIDATORS.get(c.task)
    if validator is not None:
        try:
            shape, channels = validator(c.preprocessing)
        except (ValueError, TypeError) as exc:  # TypeError: e.g. a list where a name goes
            raise _fail('preprocessing', str(exc)) from None
        # A sidecar edited by hand (or a model exported with another spec) would otherwise load
        # and fail on the first frame, inside the node, with an onnxruntime shape error.
        declared = first_shape[1:]
        if len(declared) != len(shape) or any(isinstance(d, int) and d != want
                                               for d, want in zip(declared, shape)):
            raise _fail('preprocessing', f'makes inputs of shape {shape} but input '
                        f'{c.inputs[0].name!r} is {tuple(first_shape)} (batch first)')
        if c.channel_order != channels:
            raise _fail('channel_order', f'{list(c.channel_order)} is not the order the '
                        f'preprocessing makes, {list(channels)}')
    if not isinstance(c.opset, int) or isinstance(c.opset, bool) or not 7 <= c.opset <= 100:
        raise _fail('opset', f'expected an integer in 7..100, got {c.opset!r}')
    if not isinstance(c.onnx_sha256, str) or not _SHA256_RE.match(c.onnx_sha256):
        raise _fail('onnx_sha256', f'expected 64 lowercase hex digits, got {c.onnx_sha256!r}')
    _check_str(c.training_data_id, 'training_data_id')
    if not isinstance(c.metrics, dict):
        raise _fail('metrics', f'expected a mapping, got {type(c.metrics).__name__}')
    for key, value in c.metrics.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not isinstance(key, str) or not (number or isinstance(value, str)):
            raise _fail('metrics', f'entry {key!r}: {value!r} is not a number or string')
        if number and not math.isfinite(value):
            raise _fail('metrics', f'entry {key!r} is not finite ({value!r})')
    _check_str(c.created_by, 'created_by')
    if not isinstance(c.class_ids, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
            for k, v in c.class_ids.items()):
        raise _fail('class_ids', f'expected a mapping of class name -> id >= 0, got {c.class_ids!r}')
    if len(set(c.class_ids.values())) != len(c.class_ids):
        raise _fail('class_ids', f'ids are not unique: {c.class_ids!r}')
    if not isinstance(c.camera, dict):
        raise _fail('camera', f'expected a mapping, got {type(c.camera).__name__}')
    if c.camera:
        for key in ('width', 'height'):
            value = c.camera.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise _fail('camera', f'{key!r} must be a positive integer, got {value!r}')
        for key, value in c.camera.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise _fail('camera', f'entry {key!r}: {value!r} is not a finite number')
    if c.task == 'traversability' and not c.class_ids:
        raise _fail('class_ids', 'a traversability model must list its classes')


def sidecar_path_for(onnx_path: str | os.PathLike) -> Path:
    """The sidecar of `X.onnx` is `X.json` in the same directory."""
    return Path(onnx_path).with_suffix(SIDECAR_SUFFIX)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def write_sidecar(contract: ModelContract, path: str | os.PathLike) -> Path:
    """Write the contract as JSON atomically (a crash never leaves half a sidecar)."""
    return atomic_write_text(path, json.dumps(contract.to_dict(), indent=2) + '\n')


def _tensor_from_json(data: Any, where: str, kind: type) -> Any:
    if not isinstance(data, dict):
        raise _fail(where, f'expected an object, got {type(data).__name__}')
    names = [f.name for f in fields(kind)]
    for name in names:
        if name not in data:
            raise _fail(f'{where}.{name}', 'missing')
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise _fail(f'{where}.{unknown[0]}', 'unknown field')
    values = dict(data)
    if not isinstance(values['shape'], list):
        raise _fail(f'{where}.shape', f'expected a list, got {values["shape"]!r}')
    values['shape'] = tuple(values['shape'])
    return kind(**values)


def contract_from_dict(data: Any) -> ModelContract:
    """Build and validate a contract from parsed JSON; errors name the field."""
    if not isinstance(data, dict):
        raise ModelContractError(f'expected a JSON object, got {type(data).__name__}')
    if data.get('schema') != SCHEMA:
        raise _fail('schema', f'expected {SCHEMA!r}, got {data.get("schema")!r}')
    values = {k: v for k, v in data.items() if k != 'schema'}
    known = {f.name: f for f in fields(ModelContract)}
    for name, f in known.items():
        if name not in values and name not in ('class_ids', 'camera', 'schema_version'):
            raise _fail(name, 'missing')
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise _fail(unknown[0], 'unknown field')
    for group, kind in (('inputs', TensorSpec), ('outputs', OutputSpec)):
        if not isinstance(values[group], list):
            raise _fail(group, f'expected a list, got {type(values[group]).__name__}')
        values[group] = tuple(_tensor_from_json(t, f'{group}[{i}]', kind)
                              for i, t in enumerate(values[group]))
    if isinstance(values['channel_order'], list):
        values['channel_order'] = tuple(values['channel_order'])
    return ModelContract(**values)


def load_sidecar(path: str | os.PathLike) -> ModelContract:
    """Read and validate a sidecar; any problem is one ModelContractError line naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding='utf-8')
    except FileNotFoundError:
        raise ModelContractError(f'{path}: sidecar not found') from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelContractError(f'{path}: cannot read sidecar ({exc})') from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelContractError(f'{path}: not valid JSON ({exc})') from None
    except RecursionError:  # arrays nested thousands deep
        raise ModelContractError(f'{path}: not a sidecar (JSON nested too deeply)') from None
    try:
        return contract_from_dict(data)
    except ModelContractError as exc:
        raise ModelContractError(f'{path}: {exc}') from None


def verify_onnx(contract: ModelContract, onnx_path: str | os.PathLike,
                sidecar: str | os.PathLike | None = None) -> None:
    """Check that the .onnx bytes are the ones the contract was written for."""
    onnx_path = Path(onnx_path)
    sidecar = Path(sidecar) if sidecar is not None else sidecar_path_for(onnx_path)
    try:
        actual = file_sha256(onnx_path)
    except FileNotFoundError:
        raise ModelContractError(f'{onnx_path}: model file not found') from None
    if actual != contract.onnx_sha256:
        raise ModelContractError(
            f'{sidecar}: field \'onnx_sha256\': {contract.onnx_sha256[:12]}... does not match '
            f'{onnx_path.name} ({actual[:12]}...): the sidecar belongs to another export, or the '
            f'model file was changed or cut short (an interrupted copy?)')


def load_contract(onnx_path: str | os.PathLike, expected_task: str | None = None) -> ModelContract:
    """Load `X.json` beside `X.onnx`, verify its sha256 and, if given, its task."""
    sidecar = sidecar_path_for(onnx_path)
    contract = load_sidecar(sidecar)
    if expected_task is not None and contract.task != expected_task:
        raise ModelContractError(f'{sidecar}: field \'task\': model is for {contract.task!r}, '
                                 f'expected {expected_task!r}')
    verify_onnx(contract, onnx_path, sidecar)
    return contract
