"""Data-parallel helpers: batch sharding, the single-process default, and a real 2-process gloo job."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dave_models.distributed import DistributedContext, DistributedError, init_distributed, unwrap

FIXTURES = Path(__file__).parent / 'fixtures'


def test_single_process_context_changes_nothing(monkeypatch):
    monkeypatch.delenv('WORLD_SIZE', raising=False)
    context = init_distributed('cpu')
    assert context == DistributedContext() and context.is_main and not context.enabled
    model = torch.nn.Linear(2, 1)
    assert context.wrap(model, torch.device('cpu')) is model
    assert context.shard([1, 2, 3]) == [1, 2, 3]
    assert context.mean(2.5) == 2.5


def test_shards_cover_the_batches_once_with_equal_counts_per_rank():
    batches = list(range(11))
    shards = [DistributedContext(rank, 3).shard(batches) for rank in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]  # 11 // 3: the same number of steps everywhere
    flat = sorted(b for s in shards for b in s)
    assert len(set(flat)) == 9 and set(flat) <= set(batches)


def test_bad_torchrun_environment_is_one_clear_error(monkeypatch):
    monkeypatch.setenv('WORLD_SIZE', 'two')
    with pytest.raises(DistributedError, match='WORLD_SIZE'):
        init_distributed('cpu')


def test_cuda_rank_without_a_gpu_is_refused(monkeypatch):
    if torch.cuda.device_count() > 4:
        pytest.skip('this machine has the GPUs')
    monkeypatch.setenv('WORLD_SIZE', '8')
    monkeypatch.setenv('RANK', '7')
    monkeypatch.setenv('LOCAL_RANK', '7')
    with pytest.raises(DistributedError, match='LOCAL_RANK 7'):
        init_distributed('cuda')


def _torchrun() -> str:
    found = shutil.which('torchrun', path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail('torchrun is not installed next to the interpreter (it comes with torch)')
    return found


def test_two_gloo_processes_average_gradients_like_one_process_on_both_batches(tmp_path):
    out = tmp_path / 'result.pt'
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    subprocess.run([_torchrun(), '--standalone', '--nproc_per_node=2', str(FIXTURES / 'ddp_step.py'),
                    str(out)], check=True, env=env, timeout=120, capture_output=True)
    result = torch.load(out, weights_only=False)
    assert result['world_size'] == 2 and result['rank_mean'] == 0.5
    rank0, rank1 = result['gathered']
    assert all(torch.equal(a, b) for a, b in zip(rank0, rank1))  # replicas stay identical

    # The same two steps in one process: each step's gradient is the mean of the two ranks' batches.
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((16, 4)).astype(np.float32))
    y = torch.from_numpy(rng.standard_normal((16, 1)).astype(np.float32))
    for step in range(2):
        optimizer.zero_grad()
        rows = [np.arange(4 * b, 4 * b + 4) for b in (2 * step, 2 * step + 1)]
        loss = sum(torch.nn.functional.mse_loss(model(x[r]), y[r]) for r in rows) / 2
        loss.backward()
        optimizer.step()
    for expected, got in zip(unwrap(model).parameters(), rank0):
        assert torch.allclose(expected, got, atol=1e-6)


def _dave() -> str:
    found = shutil.which('dave', path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail('the dave console script is not installed next to the interpreter')
    return found


def _torchrun_dave(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    result = subprocess.run([_torchrun(), '--standalone', '--nproc_per_node=2', _dave(), *args],
                            env=env, timeout=240, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_traversability_trains_under_torchrun_with_two_processes(tmp_path):
    from dave_sim.camera import StereoCameraConfig
    from dave_sim.collect import CollectConfig, collect

    data = tmp_path / 'collect'
    config = CollectConfig(duration_s=0.8, camera=StereoCameraConfig(width=160, height=120))
    collect(data, [3, 4, 5], config, workers=1, worker_env={'LP_NUM_THREADS': '1'}, progress=False)
    out = tmp_path / 'run'
    _torchrun_dave(['train', 'traversability', '--data', str(data), '--out', str(out), '--val-seeds', '5',
                    '--batch-size', '4', '--threads', '1', '--dry-run'], tmp_path)
    summary = json.loads((out / 'metrics.json').read_text())
    assert summary['history'][-1]['processes'] == 2
    checkpoint = torch.load(out / 'last.pt', weights_only=True)
    assert not any(key.startswith('module.') for key in checkpoint['state_dict'])  # plain net, exportable


def test_steering_trains_under_torchrun_with_two_processes(tmp_path):
    from dave_models.datasets import Samples, ShardWriter

    rng = np.random.default_rng(0)
    with ShardWriter(tmp_path / 'data', {'generator': 'tests'}) as writer:
        for seed in range(3):
            left = rng.integers(0, 256, (16, 48, 64, 3), dtype=np.uint8)
            writer.add(Samples(left, left.copy(), rng.uniform(-1, 1, 16).astype(np.float32),
                               np.full(16, seed, np.int64)))
    out = tmp_path / 'run'
    _torchrun_dave(['train', 'steering', '--data', str(tmp_path / 'data'), '--out', str(out), '--val-seeds', '2',
                    '--batch-size', '4', '--threads', '1', '--dry-run'], tmp_path)
    summary = json.loads((out / 'metrics.json').read_text())
    assert summary['history'][-1]['processes'] == 2
    checkpoint = torch.load(out / 'last.pt', weights_only=True)
    assert not any(key.startswith(('module.', 'net.')) for key in checkpoint['state_dict'])
