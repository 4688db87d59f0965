"""`dave bench models`: FLOP/parameter counting on known graphs and the figures' keys."""
import shutil
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from dave_core.model_bench import ModelBenchConfig, count_flops, count_parameters, run_model_bench

ROOT = Path(__file__).resolve().parents[1]


def _conv_gemm_model():
    weight = numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), 'w')
    fc = numpy_helper.from_array(np.zeros((8 * 10 * 10, 4), np.float32), 'fc')
    nodes = [helper.make_node('Conv', ['x', 'w'], ['c'], pads=[1, 1, 1, 1]),
             helper.make_node('Flatten', ['c'], ['f']),
             helper.make_node('MatMul', ['f', 'fc'], ['y'])]
    graph = helper.make_graph(nodes, 'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 3, 10, 10])],
                              [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 4])], [weight, fc])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])


def test_flops_and_parameters_of_a_known_graph():
    model = _conv_gemm_model()
    conv = 2 * (8 * 10 * 10) * 3 * 3 * 3
    matmul = 2 * 4 * (8 * 10 * 10)
    assert count_flops(model) == conv + matmul
    assert count_parameters(model) == 8 * 3 * 3 * 3 + 800 * 4


def test_bench_reports_every_shipped_model(tmp_path):
    figures = run_model_bench(ROOT / 'models', ModelBenchConfig(runs=10, threads=(1,)))
    assert 'steering' in figures['models']
    for task in figures['models'].split(','):
        assert figures[f'{task}_ms_p50'] > 0 and figures[f'{task}_params'] > 1000
        assert figures[f'{task}_ms_p95'] >= figures[f'{task}_ms_p50']
    assert figures['both_ms_p50'] > figures['preprocess_ms_p50'] > 0


def test_empty_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='steering.onnx'):
        run_model_bench(tmp_path)


def test_a_damaged_model_is_one_error_naming_it(tmp_path, capsys):
    from dave_cli.cli import main

    for name in ('steering.onnx', 'steering.json'):
        shutil.copy(ROOT / 'models' / name, tmp_path / name)
    data = (tmp_path / 'steering.onnx').read_bytes()
    (tmp_path / 'steering.onnx').write_bytes(data[:len(data) // 2])  # an interrupted copy
    assert main(['bench', 'models', '--model-dir', str(tmp_path), '--runs', '10']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'steering.json' in err[0] and 'cut short' in err[0], err
