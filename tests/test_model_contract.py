"""Model sidecar: round trip, atomic write, and one clear error per kind of bad sidecar."""
import json
from dataclasses import replace

import pytest

from dave_core.model_contract import (ModelContract, ModelContractError, OutputSpec, TensorSpec,
                                      file_sha256, load_contract, load_sidecar, sidecar_path_for,
                                      verify_onnx, write_sidecar)
from dave_core.preprocess import PreprocessSpec
from dave_core.segmentation import SegmentationSpec


def _contract(onnx_sha256='0' * 64, **changes) -> ModelContract:
    spec = PreprocessSpec()
    contract = ModelContract(
        name='steering', task='steering',
        inputs=(TensorSpec('stereo', (1, 6, 66, 200), 'float32'),),
        outputs=(OutputSpec('curvature_per_m', (1, 1), 'float32', 'path curvature, + = left', '1/m'),),
        channel_order=spec.channel_names(), preprocessing=spec.to_dict(), opset=18,
        onnx_sha256=onnx_sha256, training_data_id='steer-0123456789abcdef',
        metrics={'val_mae': 0.031, 'val_worlds': '30-35'}, created_by='tests')
    return replace(contract, **changes) if changes else contract


@pytest.fixture
def model_files(tmp_path):
    """A fake model file (any bytes: only its hash matters here) and its valid sidecar."""
    onnx_path = tmp_path / 'steering.onnx'
    onnx_path.write_bytes(b'not really a network, but bytes with a hash')
    sidecar = write_sidecar(_contract(file_sha256(onnx_path)), sidecar_path_for(onnx_path))
    return onnx_path, sidecar


def test_round_trip_and_naming_convention(model_files):
    onnx_path, sidecar = model_files
    assert sidecar == onnx_path.with_name('steering.json')
    contract = load_contract(onnx_path, expected_task='steering')
    assert contract == _contract(file_sha256(onnx_path))
    assert PreprocessSpec.from_dict(contract.preprocessing) == PreprocessSpec()
    assert json.loads(sidecar.read_text())['schema'] == 'dave-model-contract'
    # Atomic write: no temporary files left behind.
    assert sorted(p.name for p in onnx_path.parent.iterdir()) == ['steering.json', 'steering.onnx']


def test_sha256_mismatch_names_the_sidecar_and_field(model_files):
    onnx_path, sidecar = model_files
    onnx_path.write_bytes(b'a different export')
    with pytest.raises(ModelContractError) as info:
        load_contract(onnx_path)
    message = str(info.value)
    assert str(sidecar) in message and 'onnx_sha256' in message and '\n' not in message


def test_wrong_task_is_refused(model_files):
    onnx_path, _ = model_files
    with pytest.raises(ModelContractError, match="field 'task'.*expected 'traversability'"):
        load_contract(onnx_path, expected_task='traversability')


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelContractError, match='model file not found'):
        verify_onnx(_contract(), tmp_path / 'gone.onnx')


def test_missing_sidecar_names_the_expected_path(tmp_path):
    onnx_path = tmp_path / 'm.onnx'
    onnx_path.write_bytes(b'x')
    with pytest.raises(ModelContractError, match=r'm\.json: sidecar not found'):
        load_contract(onnx_path)


def _as_traversability(data, **fields):
    """A traversability sidecar consistent with SegmentationSpec(), then `fields` over it."""
    spec = SegmentationSpec()
    data.update(task='traversability', preprocessing=spec.to_dict(), channel_order=list(spec.channel_names()),
                class_ids={'free': 0, 'obstacle': 1})
    data['inputs'][0].update(shape=[1, *spec.input_shape])
    data.update(fields)


def _edit(sidecar, edit):
    data = json.loads(sidecar.read_text())
    edit(data)
    sidecar.write_text(json.dumps(data))


@pytest.mark.parametrize('edit, culprit', [
    (lambda d: d.pop('opset'), "field 'opset': missing"),
    (lambda d: d.pop('training_data_id'), "field 'training_data_id': missing"),
    (lambda d: d.update(task='parking'), "field 'task': unknown task 'parking'"),
    (lambda d: d.update(colour='red'), "field 'colour': unknown field"),
    (lambda d: d.update(schema='something-else'), "field 'schema'"),
    (lambda d: d.update(schema_version=99), "field 'schema_version'"),
    (lambda d: d.update(onnx_sha256='abc'), "field 'onnx_sha256'"),
    (lambda d: d['inputs'][0].pop('dtype'), r"field 'inputs\[0\]\.dtype': missing"),
    (lambda d: d['inputs'][0].update(dtype='float33'), r"field 'inputs\[0\]\.dtype': unknown dtype"),
    (lambda d: d['inputs'][0].update(shape=[1, 0, 66, 200]), r"field 'inputs\[0\]\.shape'"),
    (lambda d: d['outputs'][0].pop('units'), r"field 'outputs\[0\]\.units': missing"),
    (lambda d: d.update(outputs=[]), "field 'outputs': expected a non-empty list"),
    (lambda d: d.update(channel_order=['Y', 'U', 'V']), "field 'channel_order': 3 names for 6"),
    (lambda d: d['preprocessing'].update(color_space='hsv'), "field 'preprocessing'.*color_space"),
    (lambda d: d['metrics'].update(val_mae=None), "field 'metrics'"),
    (lambda d: _as_traversability(d, class_ids={}), "field 'class_ids'"),
    # The preprocessing must make what the graph takes (else the first frame fails in the node).
    (lambda d: d['preprocessing'].update(height=60), r"field 'preprocessing': makes inputs of shape \(6, 60, 200\) "
                                                     r"but input 'stereo' is \(1, 6, 66, 200\)"),
    (lambda d: d['channel_order'].reverse(), "field 'channel_order': .* is not the order the preprocessing makes"),
    (lambda d: _as_traversability(d, class_ids={'free': 0}, preprocessing=PreprocessSpec().to_dict()),
     "field 'preprocessing'"),
    (lambda d: d.update(class_ids={'road': 0, 'grass': 0}), "field 'class_ids': ids are not unique"),
    (lambda d: d.update(camera=[320, 240]), "field 'camera': expected a mapping, got list"),
    (lambda d: d['preprocessing'].update(color_space=['yuv']), "field 'preprocessing'"),
    (lambda d: d['preprocessing'].update(interpolation={}), "field 'preprocessing'"),
    (lambda d: d['preprocessing'].update(interpolation=['area']), "field 'preprocessing'.*interpolation: unknown"),
    (lambda d: d['inputs'][0].update(dtype='f4,('), r"field 'inputs\[0\]\.dtype': unknown dtype"),  # numpy: SyntaxError
    # Loaded, then every frame was NaN in the node: 1e-60 is 0 in float32, 1e300 is inf.
    (lambda d: d['preprocessing'].update(std=[1e-60, 0.25, 0.25]), r"std: every value must be in \[0.001, 1000\]"),
    (lambda d: d['preprocessing'].update(mean=[1e300, 0.5, 0.5]), r"mean: every value must be in \[-10, 10\]"),
    (lambda d: d['preprocessing'].update(crop_top=False), "crop_top: expected a fraction"),
    (lambda d: d['preprocessing'].update(mean=[True, 0.5, 0.5]), "mean: expected 3 finite numbers"),
    (lambda d: d['preprocessing'].pop('std'), "field 'preprocessing': missing key 'std'"),  # loaded with 0.25
    (lambda d: d.update(schema_version=True), "field 'schema_version'"),
    (lambda d: d.update(opset=10 ** 40), "field 'opset': expected an integer in 7..100"),
])
def test_bad_sidecar_names_file_and_field(model_files, edit, culprit):
    _, sidecar = model_files
    _edit(sidecar, edit)
    with pytest.raises(ModelContractError, match=culprit) as info:
        load_sidecar(sidecar)
    assert str(info.value).startswith(str(sidecar)) and '\n' not in str(info.value)


def test_deeply_nested_json_is_one_error(model_files):
    _, sidecar = model_files
    sidecar.write_text('[' * 100_000 + ']' * 100_000)
    with pytest.raises(ModelContractError, match='nested too deeply') as info:
        load_sidecar(sidecar)
    assert str(info.value).startswith(str(sidecar))


def test_not_json(model_files):
    _, sidecar = model_files
    sidecar.write_text('{"name": ')
    with pytest.raises(ModelContractError, match='not valid JSON'):
        load_sidecar(sidecar)


def test_traversability_contract_with_classes_is_valid(tmp_path):
    spec = SegmentationSpec()
    contract = _contract(task='traversability', class_ids={'traversable': 0, 'obstacle': 1, 'unknown': 2},
                         preprocessing=spec.to_dict(), channel_order=spec.channel_names(),
                         inputs=(TensorSpec('left', (1, *spec.input_shape), 'float32'),))
    path = write_sidecar(contract, tmp_path / 'trav.json')
    assert load_sidecar(path).class_ids == {'traversable': 0, 'obstacle': 1, 'unknown': 2}


def test_invalid_contract_cannot_even_be_built():
    with pytest.raises(ModelContractError, match="field 'name'"):
        _contract(name='')


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    from dave_core.atomic_file import atomic_write, atomic_write_text

    target = atomic_write_text(tmp_path / 'x.json', 'old')

    def crash(tmp):
        tmp.write_text('half of the new')
        raise OSError('disk full')
    with pytest.raises(OSError, match='disk full'):
        atomic_write(target, crash)
    assert target.read_text() == 'old'
    assert [p.name for p in tmp_path.iterdir()] == ['x.json']
    plain = tmp_path / 'plain'
    plain.write_text('')
    assert target.stat().st_mode == plain.stat().st_mode  # umask permissions, not mkstemp's 0600
