"""ONNX runner: contract checks at load, checked inputs, clear errors; steering postprocessing."""
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from dave_core.model_contract import (ModelContract, ModelContractError, OutputSpec, TensorSpec,
                                      file_sha256, sidecar_path_for, write_sidecar)
from dave_core.onnx_runner import OnnxModel, OnnxModelError, select_providers
from dave_core.preprocess import PreprocessSpec, preprocess_stereo
from dave_core.steering import SteeringOutput, SteeringPredictor, postprocess_steering

SHAPE = (1, 6, 66, 200)
GAIN = 0.5


def _write_model(path, output_names=('curvature_per_m',), input_shape=SHAPE):
    """A real ONNX graph: every output = GAIN * mean(channel 0 of 'stereo'), shape (1, 1)."""
    nodes = [
        helper.make_node('Slice', ['stereo', 'starts', 'ends', 'axes'], ['channel0']),
        helper.make_node('ReduceMean', ['channel0', 'reduce_axes'], ['mean'], keepdims=0),
        helper.make_node('Reshape', ['mean', 'out_shape'], ['mean11']),
    ]
    nodes += [helper.make_node('Mul', ['mean11', 'gain'], [name]) for name in output_names]
    initializers = [
        helper.make_tensor('starts', TensorProto.INT64, [1], [0]),
        helper.make_tensor('ends', TensorProto.INT64, [1], [1]),
        helper.make_tensor('axes', TensorProto.INT64, [1], [1]),
        helper.make_tensor('reduce_axes', TensorProto.INT64, [4], [0, 1, 2, 3]),
        helper.make_tensor('out_shape', TensorProto.INT64, [2], [1, 1]),
        helper.make_tensor('gain', TensorProto.FLOAT, [], [GAIN]),
    ]
    graph = helper.make_graph(
        nodes, 'tiny_steering',
        [helper.make_tensor_value_info('stereo', TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 1]) for n in output_names],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def _contract(path, output_names=('curvature_per_m',), input_shape=SHAPE, **changes):
    spec = PreprocessSpec()
    values = dict(
        name=path.stem, task='steering', inputs=(TensorSpec('stereo', input_shape, 'float32'),),
        outputs=tuple(OutputSpec(n, (1, 1), 'float32', 'test output', '1/m') for n in output_names),
        channel_order=spec.channel_names(), preprocessing=spec.to_dict(), opset=18,
        onnx_sha256=file_sha256(path), training_data_id='steer-test', metrics={}, created_by='tests')
    values.update(changes)
    return ModelContract(**values)


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / 'steering.onnx'
    _write_model(path)
    write_sidecar(_contract(path), sidecar_path_for(path))
    return path


def test_load_reads_the_session_and_runs(model_path):
    environ_before = dict(os.environ)
    model = OnnxModel.load(model_path, expected_task='steering')
    assert dict(os.environ) == environ_before
    assert model.input_names == ['stereo'] and model.output_names == ['curvature_per_m']
    assert model.inputs[0].shape == SHAPE and model.inputs[0].dtype == 'float32'
    assert model.providers == ['CPUExecutionProvider']
    assert np.isfinite(model.warmup_ms)
    x = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)
    out = model.run({'stereo': x})
    assert out['curvature_per_m'].shape == (1, 1)
    assert out['curvature_per_m'][0, 0] == pytest.approx(GAIN * x[0, 0].mean(), abs=1e-6)


@pytest.mark.parametrize('feed, culprit', [
    ({}, "missing input 'stereo'"),
    ({'stereo': np.zeros(SHAPE, np.float32), 'extra': np.zeros(1)}, "unexpected input 'extra'"),
    ({'stereo': np.zeros(SHAPE, np.float64)}, "'stereo' must be float32, got float64"),
    ({'stereo': np.zeros(SHAPE[1:], np.float32)}, r"'stereo' must have shape \[1, 6, 66, 200\], got \[6, 66, 200\]"),
    ({'stereo': np.zeros((1, 6, 66, 201), np.float32)}, 'must have shape'),
    ({'stereo': [[0.0]]}, 'must be a numpy array'),
])
def test_bad_inputs_are_one_clear_error(model_path, feed, culprit):
    model = OnnxModel.load(model_path)
    with pytest.raises(OnnxModelError, match=culprit) as info:
        model.run(feed)
    assert 'steering.onnx' in str(info.value)


def test_missing_model_file(tmp_path):
    with pytest.raises(OnnxModelError, match=r'nothing\.onnx: model file not found'):
        OnnxModel.load(tmp_path / 'nothing.onnx')


def test_corrupt_onnx_with_matching_sidecar(tmp_path, model_path):
    bad = tmp_path / 'corrupt.onnx'
    bad.write_bytes(b'\x08\x07garbage that is not a protobuf model' * 10)
    write_sidecar(_contract(bad), sidecar_path_for(bad))
    with pytest.raises(OnnxModelError, match=r'corrupt\.onnx: onnxruntime cannot load it') as info:
        OnnxModel.load(bad)
    assert '\n' not in str(info.value)


def test_stale_sidecar_is_refused(model_path):
    _write_model(model_path, output_names=('curvature_per_m', 'speed_mps'))  # re-export, old sidecar
    with pytest.raises(ModelContractError, match='onnx_sha256'):
        OnnxModel.load(model_path)


@pytest.mark.parametrize('contract_changes, culprit', [
    ({'outputs': (OutputSpec('curvature', (1, 1), 'float32', 'x', '1/m'),)}, 'output names'),
    ({'inputs': (TensorSpec('stereo', (1, 6, 66, 200), 'uint8'),)}, 'dtype float32, sidecar says uint8'),
    ({'inputs': (TensorSpec('stereo', (1, 6, 64, 200), 'float32'),),
      'preprocessing': PreprocessSpec(height=64).to_dict()}, 'shape'),
])
def test_sidecar_disagreeing_with_the_graph_is_refused(tmp_path, contract_changes, culprit):
    path = tmp_path / 'm.onnx'
    _write_model(path)
    write_sidecar(_contract(path, **contract_changes), sidecar_path_for(path))
    with pytest.raises(ModelContractError, match=culprit):
        OnnxModel.load(path)


def test_wrong_task_is_refused(model_path):
    with pytest.raises(ModelContractError, match="'task'"):
        OnnxModel.load(model_path, expected_task='traversability')


def test_symbolic_batch_dim_is_accepted(tmp_path):
    path = tmp_path / 'batch.onnx'
    _write_model(path, input_shape=('batch', 6, 66, 200))
    write_sidecar(_contract(path, input_shape=('batch', 6, 66, 200)), sidecar_path_for(path))
    model = OnnxModel.load(path)
    out = model.run({'stereo': np.ones(SHAPE, np.float32)})
    assert out['curvature_per_m'][0, 0] == pytest.approx(GAIN)


def test_select_providers():
    available = ['CPUExecutionProvider']
    assert select_providers(None, available) == ['CPUExecutionProvider']
    assert select_providers('auto', available) == ['CPUExecutionProvider']
    assert select_providers(['CUDAExecutionProvider'], available) == ['CPUExecutionProvider']
    gpu = ['TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider']
    assert select_providers('auto', gpu) == gpu
    assert select_providers(['CUDAExecutionProvider'], gpu) == ['CUDAExecutionProvider',
                                                                'CPUExecutionProvider']


def test_postprocess_steering():
    assert postprocess_steering({'curvature_per_m': np.array([[0.25]], np.float32)}) == \
        SteeringOutput(0.25, None)
    out = postprocess_steering({'curvature_per_m': np.array([[-0.1]]), 'speed_mps': np.array([[1.5]])})
    assert out.curvature_per_m == pytest.approx(-0.1) and out.speed_mps == pytest.approx(1.5)
    with pytest.raises(ValueError, match='lack'):
        postprocess_steering({'speed_mps': np.array([[1.0]])})
    with pytest.raises(ValueError, match='not finite'):
        postprocess_steering({'curvature_per_m': np.array([[np.nan]])})
    with pytest.raises(ValueError, match='one value'):
        postprocess_steering({'curvature_per_m': np.zeros((1, 2))})


def test_steering_predictor_preprocesses_with_the_sidecar_spec(tmp_path):
    path = tmp_path / 'with_speed.onnx'
    names = ('curvature_per_m', 'speed_mps')
    _write_model(path, output_names=names)
    write_sidecar(_contract(path, output_names=names), sidecar_path_for(path))
    predictor = SteeringPredictor.load(path)
    rng = np.random.default_rng(2)
    left = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    right = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    out = predictor.predict(left, right)
    expected = GAIN * preprocess_stereo(left, right, PreprocessSpec())[0].mean()
    assert out.curvature_per_m == pytest.approx(expected, abs=1e-5)
    assert out.speed_mps == pytest.approx(expected, abs=1e-5)
