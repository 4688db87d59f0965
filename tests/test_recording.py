"""The recording format (dave_core.recording): write-then-read round trip, atomic finish, errors.

No ROS and no simulator: frames are synthetic numpy arrays; bags are read back with rosbags.
"""
import math

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import Reader

from dave_core import recording as rec

EPOCH_NS = 1_700_000_000_123_456_789
PERIOD_NS = 66_666_667
MCAP_MAGIC = b'\x89MCAP0\r\n'


def _frame(i: int) -> dict:
    rng = np.random.default_rng(i)
    depth = rng.uniform(0.3, 30.0, (12, 16)).astype(np.float32)
    depth[:3] = np.inf  # sky: nothing there
    return {'left': rng.integers(0, 256, (12, 16, 3), dtype=np.uint8),
            'right': rng.integers(0, 256, (12, 16, 3), dtype=np.uint8),
            'labels': rng.integers(0, 3, (12, 16), dtype=np.uint8), 'depth': depth}


def _write_episode(path, frames: int = 3):
    with rec.RecordingWriter(path, rec.SIM_TOPICS, custom_data={'dave.note': 'test'}) as writer:
        writer.write(rec.COLLISIONS, rec.uint32_msg(0), EPOCH_NS)
        for i in range(frames):
            ns = EPOCH_NS + i * PERIOD_NS
            f = _frame(i)
            writer.write(rec.LEFT_IMAGE, rec.image_msg(f['left'], 'rgb8', ns, rec.LEFT_OPTICAL_FRAME), ns)
            writer.write(rec.RIGHT_IMAGE, rec.image_msg(f['right'], 'rgb8', ns, rec.RIGHT_OPTICAL_FRAME), ns)
            writer.write(rec.LEFT_INFO, rec.camera_info_msg(16, 12, 8.7, 8.7, 7.5, 5.5, ns, rec.LEFT_OPTICAL_FRAME), ns)
            writer.write(rec.RIGHT_INFO, rec.camera_info_msg(16, 12, 8.7, 8.7, 7.5, 5.5, ns, rec.RIGHT_OPTICAL_FRAME,
                                                             baseline_m=0.12), ns)
            writer.write(rec.GT_LABELS, rec.image_msg(f['labels'], 'mono8', ns, rec.LEFT_OPTICAL_FRAME), ns)
            writer.write(rec.GT_DEPTH, rec.image_msg(f['depth'], '32FC1', ns, rec.LEFT_OPTICAL_FRAME), ns)
            writer.write(rec.ODOM, rec.odometry_msg(ns, 1.0 + i, -2.0, 0.5, 0.9, 0.01, -0.2), ns)
            writer.write(rec.EXPERT_CMD_VEL, rec.twist_stamped_msg(1.0, 0.1 * i, ns), ns)
            writer.write(rec.CMD_VEL, rec.twist_msg(0.95, 0.1 * i + 0.05), ns)
        counts = dict(writer.counts)
    return counts


def test_round_trip_restores_frames_stamps_and_commands(tmp_path):
    path = tmp_path / 'episode'
    counts = _write_episode(path, frames=3)
    assert counts[rec.LEFT_IMAGE] == 3 and counts[rec.COLLISIONS] == 1

    info = rec.read_info(path)
    assert info.format_version == rec.FORMAT_VERSION
    assert info.custom_data['dave.note'] == 'test'
    assert info.message_counts == counts
    assert info.start_ns == EPOCH_NS

    by_topic: dict[str, list] = {}
    for topic, log_ns, msg in rec.read_messages(path):
        by_topic.setdefault(topic, []).append((log_ns, msg))
    for i in range(3):
        ns = EPOCH_NS + i * PERIOD_NS
        f = _frame(i)
        (left_ns, left), (right_ns, right) = by_topic[rec.LEFT_IMAGE][i], by_topic[rec.RIGHT_IMAGE][i]
        assert left_ns == right_ns == ns
        assert rec.stamp_to_ns(left.header.stamp) == rec.stamp_to_ns(right.header.stamp) == ns
        assert left.header.frame_id == rec.LEFT_OPTICAL_FRAME and left.encoding == 'rgb8'
        np.testing.assert_array_equal(rec.image_to_numpy(left), f['left'])
        np.testing.assert_array_equal(rec.image_to_numpy(right), f['right'])
        labels = by_topic[rec.GT_LABELS][i][1]
        np.testing.assert_array_equal(rec.image_to_numpy(labels), f['labels'])
        depth = rec.image_to_numpy(by_topic[rec.GT_DEPTH][i][1])
        assert depth.dtype == np.float32
        np.testing.assert_array_equal(depth, f['depth'])  # +inf survives the trip
        label = by_topic[rec.EXPERT_CMD_VEL][i][1]
        assert rec.stamp_to_ns(label.header.stamp) == ns
        assert label.twist.angular.z == pytest.approx(0.1 * i)
        assert by_topic[rec.CMD_VEL][i][1].angular.z == pytest.approx(0.1 * i + 0.05)
    right_info = by_topic[rec.RIGHT_INFO][0][1]
    assert right_info.p[3] == pytest.approx(-8.7 * 0.12) and by_topic[rec.LEFT_INFO][0][1].p[3] == 0.0
    odom = by_topic[rec.ODOM][2][1]
    assert (odom.header.frame_id, odom.child_frame_id) == ('odom', 'base_link')
    q = odom.pose.pose.orientation
    assert 2 * math.atan2(q.z, q.w) == pytest.approx(0.5)
    assert odom.pose.pose.position.x == pytest.approx(3.0) and odom.twist.twist.linear.y == pytest.approx(0.01)
    assert by_topic[rec.COLLISIONS][0][1].data == 0


def test_bag_is_standard_rosbag2_mcap(tmp_path):
    path = tmp_path / 'episode'
    _write_episode(path, frames=2)
    files = sorted(p.name for p in path.iterdir())
    assert files == ['episode.mcap', 'metadata.yaml']
    data = (path / 'episode.mcap').read_bytes()
    assert data.startswith(MCAP_MAGIC) and data.endswith(MCAP_MAGIC)  # complete file: footer written
    meta = yaml.safe_load((path / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert meta['storage_identifier'] == 'mcap' and meta['version'] == rec.ROSBAG2_VERSION
    topics = {t['topic_metadata']['name']: t['topic_metadata'] for t in meta['topics_with_message_count']}
    assert topics[rec.LEFT_IMAGE]['type'] == 'sensor_msgs/msg/Image'
    assert topics[rec.EXPERT_CMD_VEL]['type'] == 'geometry_msgs/msg/TwistStamped'
    assert topics[rec.COLLISIONS]['offered_qos_profiles'][0]['durability'] == 'transient_local'
    assert topics[rec.CMD_VEL]['offered_qos_profiles'][0]['depth'] == 1
    with Reader(path) as reader:  # the plain rosbags reader, no dave code involved
        assert reader.message_count == meta['message_count']
        assert {c.topic for c in reader.connections} == set(rec.SIM_TOPICS)


def test_cdr_bytes_from_a_live_subscription_are_recorded_as_is(tmp_path):
    path = tmp_path / 'live'
    twist = rec.typestore().serialize_cdr(rec.twist_msg(0.4, -0.3), 'geometry_msgs/msg/Twist')
    with rec.RecordingWriter(path, rec.DRIVING_TOPICS, compress=False) as writer:
        writer.write_cdr(rec.CMD_VEL, bytes(twist), EPOCH_NS)
    [(topic, log_ns, msg)] = list(rec.read_messages(path))
    assert (topic, log_ns) == (rec.CMD_VEL, EPOCH_NS)
    assert (msg.linear.x, msg.angular.z) == (0.4, -0.3)


def test_an_interrupted_writer_leaves_nothing_under_the_final_name(tmp_path):
    path = tmp_path / 'episode'
    with pytest.raises(KeyboardInterrupt):
        with rec.RecordingWriter(path) as writer:
            writer.write(rec.CMD_VEL, rec.twist_msg(1.0, 0.0), EPOCH_NS)
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []

    # A writer killed outright leaves its hidden partial directory; cleanup removes only that.
    writer = rec.RecordingWriter(tmp_path / 'killed')
    writer.write(rec.CMD_VEL, rec.twist_msg(1.0, 0.0), EPOCH_NS)
    _write_episode(tmp_path / 'done', frames=1)
    hidden = [p for p in tmp_path.iterdir() if p.name.startswith('.')]
    assert len(hidden) == 1
    assert rec.remove_partial_recordings(tmp_path) == hidden
    assert sorted(p.name for p in tmp_path.iterdir()) == ['done']
    assert rec.read_info(tmp_path / 'done').message_counts[rec.LEFT_IMAGE] == 1


def test_existing_recording_is_never_overwritten(tmp_path):
    _write_episode(tmp_path / 'episode', frames=1)
    with pytest.raises(rec.RecordingError, match='exists already'):
        rec.RecordingWriter(tmp_path / 'episode')


@pytest.mark.parametrize('array, encoding, needle', [
    (np.zeros((4, 4), np.uint8), 'rgb8', 'rgb8 image needs a HxWx3'),
    (np.zeros((4, 4, 3), np.uint8), 'mono8', 'mono8 image needs a HxW'),
    (np.zeros((4, 4), np.float64), '32FC1', 'float32'),
    (np.zeros((4, 4), np.uint8), 'bgr8', "'bgr8' is not in the format"),
])
def test_bad_frames_are_named(array, encoding, needle):
    with pytest.raises(rec.RecordingError, match=needle):
        rec.image_msg(array, encoding, EPOCH_NS, rec.LEFT_OPTICAL_FRAME)


def test_unknown_or_unopened_topics_are_named(tmp_path):
    with pytest.raises(rec.RecordingError, match="'/camera/image' is not in the recording format"):
        rec.RecordingWriter(tmp_path / 'a', ['/camera/image'])
    with rec.RecordingWriter(tmp_path / 'b', rec.DRIVING_TOPICS) as writer:
        with pytest.raises(rec.RecordingError, match="'/sim/collisions' was not opened"):
            writer.write(rec.COLLISIONS, rec.uint32_msg(1), EPOCH_NS)


def test_padded_rows_are_read_without_the_padding():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = rec.image_msg(image, 'rgb8', EPOCH_NS, rec.LEFT_OPTICAL_FRAME)
    padded = np.zeros((2, 12), np.uint8)
    padded[:, :9] = image.reshape(2, 9)
    msg.step, msg.data = 12, padded.reshape(-1)
    np.testing.assert_array_equal(rec.image_to_numpy(msg), image)


def test_newer_format_and_foreign_directories_are_refused(tmp_path):
    path = tmp_path / 'episode'
    _write_episode(path, frames=1)
    meta_path = path / 'metadata.yaml'
    meta = yaml.safe_load(meta_path.read_text())
    meta['rosbag2_bagfile_information']['custom_data'][rec.VERSION_KEY] = str(rec.FORMAT_VERSION + 1)
    meta_path.write_text(yaml.safe_dump(meta))
    with pytest.raises(rec.RecordingError, match='newer than this dave'):
        rec.read_info(path)
    with pytest.raises(rec.RecordingError, match='cannot read metadata.yaml'):
        rec.read_info(tmp_path)


def test_broken_yaml_is_one_line_naming_file_and_line(tmp_path):
    path = tmp_path / 'episode'
    _write_episode(path, frames=1)
    lines = (path / 'metadata.yaml').read_text().splitlines()
    lines[2] = '  : - [ broken'
    (path / 'metadata.yaml').write_text('\n'.join(lines))
    with pytest.raises(rec.RecordingError) as error:
        rec.read_info(path)
    message = str(error.value)
    assert '\n' not in message and f'{path / "metadata.yaml"}: not valid YAML at line 3' in message


def test_storage_problem_sees_a_cut_short_or_missing_file(tmp_path):
    path = tmp_path / 'episode'
    _write_episode(path, frames=3)
    info = rec.read_info(path)
    assert info.files == ('episode.mcap',) and rec.storage_problem(info) is None
    mcap = path / 'episode.mcap'
    whole = mcap.read_bytes()
    mcap.write_bytes(whole[:len(whole) // 2])
    assert rec.storage_problem(info) == 'storage file episode.mcap is cut short (no MCAP end magic)'
    mcap.write_bytes(b'')
    assert rec.storage_problem(info) == 'storage file episode.mcap is empty'
    mcap.unlink()
    assert rec.storage_problem(info) == 'storage file episode.mcap is missing'
