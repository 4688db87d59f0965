"""The training loops' shared plan: batches per epoch and process, dry runs, the schedule, resuming."""
import math

import numpy as np
import pytest
import torch

from dave_models.distributed import DistributedContext
from dave_models.training import (DRY_RUN_BATCHES, EpochPlan, TrainingError, load_resume, optimizer_step,
                                  output_directory, restore, train_batches)


def test_an_epochs_batches_depend_only_on_seed_and_epoch():
    plan = EpochPlan.make(100, 8, seed=3, epochs=4, dry_run=False, ddp=DistributedContext())
    assert (plan.epochs, plan.steps_per_epoch, plan.total_steps) == (4, 12, 48)
    first, _ = plan.batches(2, DistributedContext())
    again, _ = plan.batches(2, DistributedContext())  # what a run resumed after epoch 1 draws
    other, _ = plan.batches(3, DistributedContext())
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    assert sorted(np.concatenate(first).tolist()) == sorted(set(np.concatenate(first).tolist()))


def test_every_process_takes_the_same_number_of_steps_and_no_frame_twice():
    plan = EpochPlan.make(100, 8, seed=0, epochs=2, dry_run=False, ddp=DistributedContext(0, 3))
    shards = [plan.batches(1, DistributedContext(rank, 3))[0] for rank in range(3)]
    assert [len(s) for s in shards] == [plan.steps_per_epoch] * 3 == [4] * 3
    frames = np.concatenate([b for s in shards for b in s])
    assert len(frames) == len(set(frames.tolist()))


def test_a_dry_run_is_one_short_epoch():
    plan = EpochPlan.make(1000, 8, seed=0, epochs=9, dry_run=True, ddp=DistributedContext())
    assert (plan.epochs, plan.steps_per_epoch) == (1, DRY_RUN_BATCHES)
    assert len(plan.batches(1, DistributedContext())[0]) == DRY_RUN_BATCHES
    assert len(train_batches(5, 8, np.random.default_rng(0))) == 1  # fewer frames than a batch: one batch


def _trained(plan: EpochPlan, steps: int):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = plan.cosine_schedule(optimizer)
    for _ in range(steps):
        optimizer_step(model(torch.ones(4, 3)).square().mean(), optimizer, scheduler, epoch=1)
    return model, optimizer, scheduler


def test_restore_continues_the_schedule_over_grown_epochs():
    short = EpochPlan.make(16, 8, seed=0, epochs=1, dry_run=False, ddp=DistributedContext())
    model, optimizer, scheduler = _trained(short, short.total_steps)
    checkpoint = {'state_dict': model.state_dict(), 'optimizer': optimizer.state_dict(),
                  'scheduler': scheduler.state_dict(), 'history': [{'epoch': 1.0}], 'epoch': 1}
    longer = EpochPlan.make(16, 8, seed=0, epochs=2, dry_run=False, ddp=DistributedContext())
    fresh, fresh_optimizer, fresh_scheduler = _trained(longer, 0)
    history, start_epoch = restore(checkpoint, fresh, fresh_optimizer, fresh_scheduler, longer)
    assert (history, start_epoch) == ([{'epoch': 1.0}], 1)
    assert torch.equal(fresh.weight, model.weight)
    assert fresh_scheduler.T_max == longer.total_steps == 4
    # The 1-epoch run ended its cosine at rate 0; the resumed one goes on along the longer cosine,
    # exactly as a 2-epoch run from the start does.
    assert optimizer.param_groups[0]['lr'] == pytest.approx(0.0, abs=1e-12)
    straight, straight_optimizer, straight_scheduler = _trained(longer, 2)
    for step in (2, 3):
        assert fresh_optimizer.param_groups[0]['lr'] == pytest.approx(straight_optimizer.param_groups[0]['lr'])
        assert fresh_optimizer.param_groups[0]['lr'] == pytest.approx(0.05 * (1 + math.cos(math.pi * step / 4)))
        optimizer_step(fresh(torch.ones(4, 3)).square().mean(), fresh_optimizer, fresh_scheduler, epoch=2)
        optimizer_step(straight(torch.ones(4, 3)).square().mean(), straight_optimizer, straight_scheduler,
                       epoch=2)


def _two_param_groups(checkpoint):
    second = torch.optim.AdamW([{'params': [torch.zeros(1)]}, {'params': [torch.zeros(1)]}])
    checkpoint['optimizer'] = second.state_dict()


@pytest.mark.parametrize('damage, message', [
    (lambda c: c.pop('best_val_mae'), "missing key 'best_val_mae'"),
    (lambda c: c.update(scheduler=None), "key 'scheduler' has the wrong type"),
    (lambda c: c['state_dict'].pop('bias'), 'its weights do not fit its model_config'),
    (_two_param_groups, "its optimizer state does not fit this run's parameters"),
])
def test_restore_names_what_does_not_fit(damage, message):
    plan = EpochPlan.make(16, 8, seed=0, epochs=1, dry_run=False, ddp=DistributedContext())
    model, optimizer, scheduler = _trained(plan, 1)
    checkpoint = {'state_dict': model.state_dict(), 'optimizer': optimizer.state_dict(), 'best_val_mae': 0.1,
                  'scheduler': scheduler.state_dict(), 'history': [{'epoch': 1.0}], 'epoch': 1}
    damage(checkpoint)
    with pytest.raises(TrainingError, match=f'^--resume: run/last.pt: {message}'):
        restore(checkpoint, *_trained(plan, 0), plan, 'run/last.pt', {'best_val_mae': float})


def test_a_non_finite_loss_is_refused_before_any_weight_moves():
    plan = EpochPlan.make(16, 8, seed=0, epochs=1, dry_run=False, ddp=DistributedContext())
    model, optimizer, scheduler = _trained(plan, 0)
    before = model.weight.detach().clone()
    with pytest.raises(TrainingError, match='epoch 5: loss became nan'):
        optimizer_step(model(torch.ones(1, 3)).sum() * float('nan'), optimizer, scheduler, epoch=5)
    assert torch.equal(model.weight, before)


def test_restore_follows_the_new_plan_when_the_batch_size_changed():
    small_batches = EpochPlan.make(32, 4, seed=0, epochs=4, dry_run=False, ddp=DistributedContext())
    model, optimizer, scheduler = _trained(small_batches, 2 * small_batches.steps_per_epoch)  # 2 epochs, 16 steps
    checkpoint = {'state_dict': model.state_dict(), 'optimizer': optimizer.state_dict(),
                  'scheduler': scheduler.state_dict(), 'history': [{'epoch': 1.0}, {'epoch': 2.0}], 'epoch': 2}
    big_batches = EpochPlan.make(32, 8, seed=0, epochs=4, dry_run=False, ddp=DistributedContext())  # 16 steps in all
    fresh, fresh_optimizer, fresh_scheduler = _trained(big_batches, 0)
    restore(checkpoint, fresh, fresh_optimizer, fresh_scheduler, big_batches)
    # Half way through the run by epochs, so half way down the cosine (not at its end, which the
    # checkpoint's 16 steps would say), and the rate reaches 0 with the last step of epoch 4.
    assert fresh_optimizer.param_groups[0]['lr'] == pytest.approx(0.05)
    for _ in range(2 * big_batches.steps_per_epoch):
        optimizer_step(fresh(torch.ones(4, 3)).square().mean(), fresh_optimizer, fresh_scheduler, epoch=3)
    assert fresh_optimizer.param_groups[0]['lr'] == pytest.approx(0.0, abs=1e-12)


def test_more_processes_than_batches_is_refused():
    with pytest.raises(TrainingError, match='1 batch.* fewer than the 2 processes: lower --batch-size'):
        EpochPlan.make(6, 8, seed=0, epochs=1, dry_run=False, ddp=DistributedContext(0, 2))


def _checkpoint_file(path, fmt='dave-test-checkpoint'):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({'format': fmt, 'epoch': 1, 'model_config': {}, 'preprocess': {}, 'state_dict': {},
                'metrics': {}, 'history': [], 'data_id': 'test', 'train_seeds': [0], 'val_seeds': [1]}, path)
    return path


@pytest.mark.parametrize('damage, message', [
    (lambda p: p.write_bytes(b'junk'), 'is not a readable checkpoint'),
    (lambda p: p.write_bytes(_checkpoint_file(p).read_bytes()[:100]), 'is not a readable checkpoint'),
    (lambda p: _checkpoint_file(p, 'something-else'), 'is not a dave-test-checkpoint'),
    (lambda p: torch.save({**torch.load(_checkpoint_file(p)), 'history': None}, p),
     "key 'history' has the wrong type"),
    (lambda p: None, 'not found'),
])
def test_a_bad_resume_checkpoint_is_one_error_naming_it(tmp_path, damage, message):
    path = tmp_path / 'run' / 'last.pt'
    path.parent.mkdir()
    damage(path)
    with pytest.raises(TrainingError, match=f'--resume: {path}.*{message}|--resume: {path} {message}'):
        load_resume(str(path), tmp_path / 'run', 'dave-test-checkpoint')


def test_resume_never_replaces_another_run(tmp_path):
    first = _checkpoint_file(tmp_path / 'first' / 'last.pt')
    _checkpoint_file(tmp_path / 'second' / 'last.pt')
    with pytest.raises(TrainingError, match='--out .*second holds another run'):
        load_resume(str(first), tmp_path / 'second', 'dave-test-checkpoint')
    with pytest.raises(TrainingError, match='already holds last.pt; pass --resume'):
        load_resume(None, tmp_path / 'second', 'dave-test-checkpoint')
    # Its own directory (by path or by default), or an empty one, is fine.
    assert load_resume(str(first), tmp_path / 'first', 'dave-test-checkpoint')['epoch'] == 1
    assert load_resume('', tmp_path / 'first', 'dave-test-checkpoint')['epoch'] == 1
    assert load_resume(str(first), tmp_path / 'empty', 'dave-test-checkpoint')['epoch'] == 1
    assert load_resume(None, tmp_path / 'empty', 'dave-test-checkpoint') is None


def test_a_failed_run_removes_only_the_empty_folder_it_made(tmp_path):
    made = tmp_path / 'new' / 'run'
    with pytest.raises(TrainingError):
        with output_directory(made):
            made.mkdir(parents=True)
            raise TrainingError('bad data')
    assert not made.exists()
    kept = tmp_path / 'kept'  # there before the run: a user's folder stays, empty or not
    kept.mkdir()
    with pytest.raises(KeyboardInterrupt):
        with output_directory(kept):
            raise KeyboardInterrupt
    assert kept.is_dir()
    written = tmp_path / 'written'  # the run wrote something: left for the user to read
    with pytest.raises(TrainingError):
        with output_directory(written):
            written.mkdir()
            (written / 'curve.png').write_bytes(b'png')
            raise TrainingError('non-finite loss')
    assert (written / 'curve.png').exists()
