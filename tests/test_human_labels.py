"""Which frames a person drove and with what command, from recorded receive times (no ROS)."""
import json

import numpy as np
import pytest

from dave_core import recording as rec
from dave_models.bag_dataset import BagDataError, build_steering
from dave_models.datasets import load_manifest
from dave_models.human_labels import AUTOPILOT, STALE, HumanDriver

MS = 1_000_000


def test_frames_a_person_drove_take_the_newest_fresh_teleop_command():
    driver = HumanDriver()
    driver.intervention(True)
    assert driver.label(10 * MS) == STALE  # no command yet
    driver.teleop(50 * MS, 0.4, 0.0)
    assert driver.label(100 * MS) == (0.4, 0.0)
    driver.teleop(150 * MS, 0.5, 0.1)
    assert driver.label(150 * MS) == (0.5, 0.1)  # received at the same instant: in effect
    assert driver.label(650 * MS) == (0.5, 0.1)  # 0.5 s old: still fresh
    assert driver.label(651 * MS) == STALE  # the command node has stopped the vehicle by now


def test_only_frames_with_a_person_in_charge_are_labels():
    driver = HumanDriver()
    driver.teleop(0, 0.3, 0.9)
    assert driver.label(10 * MS) == AUTOPILOT  # nothing recorded says a person drove
    driver.intervention(True)
    assert driver.label(20 * MS) == (0.3, 0.9)
    driver.intervention(False)
    assert driver.label(30 * MS) == AUTOPILOT


# ---------------------------------------------------------------- a recorded drive -> steering shards

T0 = 1_800_000_000 * 1_000_000_000  # camera clock (header stamps)
R0 = 5_000_000_000  # recorder clock (receive times): different on purpose


def _frame(i):
    """A left/right pair whose pixels say which frame it is."""
    left = np.full((24, 32, 3), i, np.uint8)
    return left, left + 100


def _write_drive(path, events):
    """events: (receive ms, kind, value); frames arrive at their receive time, stamped on the camera clock."""
    topics = (rec.LEFT_IMAGE, rec.RIGHT_IMAGE, rec.TELEOP_CMD_VEL, rec.MODE, rec.INTERVENTION)  # as recorded
    with rec.RecordingWriter(path, topics=topics) as writer:
        for ms, kind, value in sorted(events, key=lambda e: e[0]):
            t = R0 + ms * MS
            if kind == 'frame':
                left, right = _frame(value)
                stamp = T0 + value * 66 * MS
                writer.write(rec.LEFT_IMAGE, rec.image_msg(left, 'rgb8', stamp, rec.LEFT_OPTICAL_FRAME), t)
                writer.write(rec.RIGHT_IMAGE, rec.image_msg(right, 'rgb8', stamp, rec.RIGHT_OPTICAL_FRAME), t)
            elif kind == 'teleop':
                writer.write(rec.TELEOP_CMD_VEL, rec.twist_stamped_msg(*value, stamp_ns=T0), t)
            elif kind == 'mode':
                writer.write(rec.MODE, rec.string_msg(value), t)
            else:
                writer.write(rec.INTERVENTION, rec.bool_msg(value), t)


def test_a_shared_drive_becomes_shards_of_the_intervention_frames_only(tmp_path):
    events = [(0, 'mode', 'shared'), (0, 'intervention', False)]
    events += [(100 * i + 5, 'frame', i) for i in range(10)]  # frames 0..9 at 5, 105, ... 905 ms
    events += [(300, 'intervention', True), (300, 'teleop', (0.5, 0.25)), (400, 'teleop', (0.5, -0.5)),
               (500, 'teleop', (0.0, 0.0)),  # the person stops: standing, no label
               (600, 'teleop', (-0.2, 0.0)),  # reversing: no label
               (700, 'intervention', False)]
    data = tmp_path / 'run1' / 'episodes'
    _write_drive(data / 'rec_20261207T163000Z_0000', events)
    _write_drive(data / 'rec_20261207T163000Z_0001', [(0, 'mode', 'auto'), (0, 'intervention', False)]
                 + [(100 * i, 'frame', i) for i in range(3)])  # the autopilot drove it all: no samples
    manifest, stats = build_steering(tmp_path / 'run1', tmp_path / 'shards', label='human', progress=False)
    assert manifest.num_samples == 2 and manifest.world_seeds == (20261207163000,)
    shard = np.load(next((tmp_path / 'shards').glob('shard_*.npz')))
    assert shard['left'][:, 0, 0, 0].tolist() == [3, 4]  # frames 3 and 4, by their pixels
    assert shard['curvature'].tolist() == [0.5, -1.0]  # w / v of the command in effect
    assert shard['speed'].tolist() == [0.5, 0.5]
    first, second = stats
    assert (first['dropped_autopilot'], first['dropped_standing'], first['dropped_reversing']) == (6, 1, 1)  # frames 0-2 and 7-9
    assert (second['samples'], second['dropped_autopilot']) == (0, 3)
    source = json.loads((tmp_path / 'shards' / 'manifest.json').read_text())['source']
    assert 'teleop' in source['label']


def test_a_recording_nobody_drove_by_hand_is_one_clear_error(tmp_path):
    bag = tmp_path / 'rec_20261207T163000Z_0000'
    _write_drive(bag, [(0, 'mode', 'manual'), (0, 'teleop', (0.5, 0.0))] + [(100 * i + 5, 'frame', i) for i in range(3)])
    # The mode alone does not say who drove (/dave/intervention, the command node's word, does).
    with pytest.raises(BagDataError, match=r'no frame a person drove .*\(3 stereo pairs: autopilot drove 3,.*'
                                           r'no /dave/intervention was recorded'):
        build_steering(bag, tmp_path / 'shards', label='human', progress=False)
    assert not (tmp_path / 'shards').exists()
    bag = tmp_path / 'rec_20261207T170000Z_0000'
    _write_drive(bag, [(0, 'intervention', True), (0, 'teleop', (0.5, 0.0))]
                 + [(100 * i + 5, 'frame', i) for i in range(3)])
    manifest, _ = build_steering(bag, tmp_path / 'shards', label='human', progress=False)
    assert manifest.num_samples == 3 and load_manifest(tmp_path / 'shards').num_samples == 3
    assert manifest.world_seeds == (20261207170000,)


def test_a_folder_of_recordings_gives_one_id_per_drive(tmp_path):
    for name in ('rec_20261207T163000Z', 'rec_20261208T090000Z'):
        for segment in range(2):
            _write_drive(tmp_path / 'data' / name / 'episodes' / f'{name}_{segment:04d}',
                         [(0, 'intervention', True), (0, 'teleop', (0.5, 0.1))]
                         + [(100 * i + 5, 'frame', i) for i in range(3)])
    manifest, stats = build_steering(tmp_path / 'data', tmp_path / 'shards', label='human', progress=False)
    assert manifest.world_seeds == (20261207163000, 20261208090000)
    assert manifest.num_samples == 12 and len(stats) == 4


def test_a_segment_without_a_stereo_pair_is_skipped_not_an_error(tmp_path):
    data = tmp_path / 'run1' / 'episodes'
    _write_drive(data / 'rec_20261207T163000Z_0000', [(0, 'intervention', True), (0, 'teleop', (0.5, 0.1))]
                 + [(100 * i + 5, 'frame', i) for i in range(3)])
    # The last segment of a recording stopped between the left and the right image of an instant.
    with rec.RecordingWriter(data / 'rec_20261207T163000Z_0001', topics=(rec.LEFT_IMAGE, rec.INTERVENTION)) as w:
        w.write(rec.INTERVENTION, rec.bool_msg(True), R0)
        w.write(rec.LEFT_IMAGE, rec.image_msg(_frame(9)[0], 'rgb8', T0, rec.LEFT_OPTICAL_FRAME), R0)
    manifest, stats = build_steering(tmp_path / 'run1', tmp_path / 'shards', label='human', progress=False)
    assert manifest.num_samples == 3
    assert (stats[1]['samples'], stats[1]['unpaired']) == (0, 1)


def test_the_contact_sheet_of_a_recording_shows_the_persons_labels_and_time_in_charge(tmp_path):
    from dave_models.contact_sheet import bag_sheet, render_sheet

    events = [(0, 'intervention', False)] + [(100 * i + 5, 'frame', i) for i in range(10)]
    events += [(300, 'intervention', True), (300, 'teleop', (0.5, 0.25)), (700, 'intervention', False),
               (700, 'teleop', (0.5, -0.5))]  # after the person let go: not a label
    bag = tmp_path / 'rec_20261207T163000Z_0000'
    _write_drive(bag, events)
    sheet = bag_sheet(bag, n_frames=10)
    titles = [f.title for f in sheet.frames]
    assert titles[0].endswith('(autopilot)') and titles[9].endswith('(autopilot)')
    assert 'k +0.50 1/m' in titles[3] and 'driven by a person' in sheet.title
    assert sheet.series['label_w'].tolist() == [0.25]  # the person's commands while in charge only
    assert sheet.series['person_spans'] == [(pytest.approx(0.3), pytest.approx(0.7))]  # from the bag's first message
    # Frames are placed on the bag's clock (receive times), not the camera's (T0 here), so the
    # figure renders (it used to fail in FreeType drawing frame numbers 1.8e9 s off the plot).
    assert sheet.series['frame_t'] == pytest.approx([0.1 * i + 0.005 for i in range(10)])
    assert titles[1].startswith('t 0.1 s')
    render_sheet(sheet, tmp_path / 'sheet.png')
    assert (tmp_path / 'sheet.png').stat().st_size > 0
