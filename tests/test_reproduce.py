"""scripts/reproduce_models.sh (`make models`): the whole chain on a few frames, and its refusals."""
import json
import os
import subprocess
from pathlib import Path

import torch

from dave_core.model_contract import load_contract

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / 'scripts/reproduce_models.sh'


def test_smoke_run_goes_from_simulation_to_evaluated_models(tmp_path):
    out = tmp_path / 'reproduce'
    env = {**os.environ, 'REPRODUCE_SMOKE': '1', 'THREADS': '1'}
    result = subprocess.run(['bash', str(SCRIPT), str(out)], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    steering = load_contract(out / 'models/steering.onnx', expected_task='steering')
    trav = load_contract(out / 'models/traversability.onnx', expected_task='traversability')
    # The steering model embeds the traversability network the run trained first.
    checkpoint_info = steering.preprocessing
    assert (checkpoint_info['height'], checkpoint_info['width']) == (trav.preprocessing['height'],
                                                                     trav.preprocessing['width'])
    stages = [line.rsplit(None, 2)[0] for line in (out / 'timings.txt').read_text().splitlines()]
    assert stages == ['traversability data', 'traversability training', 'traversability export',
                      'steering data', 'steering training', 'steering export', 'dagger data', 'dagger merge',
                      'steering training (dagger)', 'steering export (dagger)', 'steering fine-tuning',
                      'steering export (tuned)', 'more steering data', 'more worlds merge',
                      'steering fine-tuning (all)', 'steering export (all)', 'steering test data', 'evaluation',
                      'total']
    tuned = json.loads((out / 'train/steering_tuned/metrics.json').read_text())
    assert tuned['data_id'] == dagger_id(out)  # fine-tuned on the DAgger-merged data
    final = torch.load(out / 'train/steering_all/last.pt', weights_only=True)
    assert final['model_config']['arc_readout'] == 'direction'  # the shipped model's readout (steering card)
    assert final['init'] == str((out / 'train/steering_tuned/last.pt').resolve())  # tuned once more
    assert steering.training_data_id.startswith(final['data_id'])
    for stage in ('first', 'dagger', 'tuned'):
        assert (out / f'models/{stage}/steering.onnx').is_file()
    dagger = json.loads((out / 'data/steering_dagger/manifest.json').read_text())
    assert dagger['num_samples'] == 5 * 6  # 3 expert worlds + 2 DAgger worlds, 6 frames each
    everything = json.loads((out / 'data/steering_all/manifest.json').read_text())
    assert everything['num_samples'] == 6 * 6  # + 1 more expert world
    report = json.loads((out / 'steering_closed_loop.json').read_text())
    assert report['mode'] == 'offline' and report['worlds'] == 1
    assert (out / 'traversability_eval.json').is_file()
    test = json.loads((out / 'steering_test.json').read_text())  # fresh worlds, none trained on
    assert test['direction_accuracy_per_world'].keys() == {'6'} and test['samples'] == 6


def dagger_id(out: Path) -> str:
    return json.loads((out / 'train/steering/metrics.json').read_text())['data_id']


def test_an_existing_output_directory_is_refused(tmp_path):
    (tmp_path / 'keep.txt').write_text('trained before')
    result = subprocess.run(['bash', str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and 'already exists' in result.stderr
    assert (tmp_path / 'keep.txt').read_text() == 'trained before'
