"""The live recorder's core (dave_core.live_recording) without ROS: segments, manifest, QoS, errors.

Messages are CDR bytes serialized with the format's own typestore, as DDS would hand them over;
times are injected. Bags are read back with the format's reader and plain rosbags.
"""
import errno
import json

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import Reader

from dave_cli.cli import main as dave_main
from dave_core import recording as rec
from dave_core import live_recording as live

EPOCH_NS = 1_800_000_000_000_000_000
MS = 1_000_000


def _cdr(msg, topic):
    return bytes(rec.typestore().serialize_cdr(msg, rec.TOPICS[topic].msgtype))


def _teleop(i):
    return _cdr(rec.twist_stamped_msg(0.1 * i, -0.01 * i, EPOCH_NS + i * MS), rec.TELEOP_CMD_VEL)


def _recorder(out, **settings):
    recorder = live.LiveRecorder(out, live.RecordSettings(**settings), wall_time_s=1_796_660_000.0)
    recorder.start(EPOCH_NS)
    return recorder


def test_qos_matches_the_publishers_the_contract_allows():
    camera = live.subscription_qos(rec.LEFT_IMAGE)
    assert (camera.reliable, camera.transient_local) == (False, False)  # matches best-effort drivers too
    assert live.subscription_qos(rec.ODOM).reliable is False
    for topic in (rec.TELEOP_CMD_VEL, rec.STEERING_COMMAND, rec.CMD_VEL, rec.ESTOP):
        q = live.subscription_qos(topic)
        assert (q.reliable, q.transient_local) == (True, False), topic
    for topic in (rec.MODE, rec.INTERVENTION, rec.COLLISIONS):
        q = live.subscription_qos(topic)
        assert (q.reliable, q.transient_local) == (True, True), topic
    with pytest.raises(live.RecordError, match="'/nope'"):
        live.subscription_qos('/nope')


def test_format_version_2_topics_and_record_defaults():
    assert rec.FORMAT_VERSION == 2
    assert rec.RECORD_TOPICS[:len(rec.DRIVING_TOPICS)] == rec.DRIVING_TOPICS
    stamped = 'geometry_msgs/msg/TwistStamped'
    expected = {rec.TELEOP_CMD_VEL: stamped, rec.STEERING_COMMAND: stamped,
                rec.MODE: 'std_msgs/msg/String', rec.ESTOP: 'std_msgs/msg/Bool', rec.INTERVENTION: 'std_msgs/msg/Bool',
                rec.TRAV_LABELS: 'sensor_msgs/msg/Image'}
    assert {t: rec.TOPICS[t].msgtype for t in expected} == expected
    assert set(rec.RECORD_TOPICS) == set(rec.DRIVING_TOPICS) | set(expected)
    assert rec.TOPICS[rec.MODE].qos.durability.name == 'TRANSIENT_LOCAL'
    assert rec.TOPICS[rec.ESTOP].qos.durability.name == 'VOLATILE'


def test_version_1_recordings_still_read(tmp_path):
    path = tmp_path / 'v1'
    with rec.RecordingWriter(path, rec.DRIVING_TOPICS) as writer:
        writer.write(rec.CMD_VEL, rec.twist_msg(0.5, 0.1), EPOCH_NS)
    metadata = path / 'metadata.yaml'
    meta = yaml.safe_load(metadata.read_text())
    meta['rosbag2_bagfile_information']['custom_data'][rec.VERSION_KEY] = '1'
    metadata.write_text(yaml.safe_dump(meta))
    assert rec.read_info(path).format_version == 1
    [(topic, _, msg)] = list(rec.read_messages(path))
    assert topic == rec.CMD_VEL and msg.linear.x == 0.5


def test_segments_rotate_without_losing_a_message(tmp_path):
    out = tmp_path / 'run'
    recorder = _recorder(out, topics=(rec.TELEOP_CMD_VEL, rec.MODE), split_s=1.0)
    recorder.write(rec.MODE, _cdr(rec.string_msg('manual'), rec.MODE), EPOCH_NS)
    sent = 0
    for i in range(350):  # 3.5 s at 100 Hz -> segments [0,1) [1,2) [2,3) [3,3.5)
        assert recorder.write(rec.TELEOP_CMD_VEL, _teleop(i), EPOCH_NS + i * 10 * MS)
        sent += 1
        if i % 10 == 0:
            assert recorder.tick(EPOCH_NS + i * 10 * MS) is False  # no duration: never stops
    summary = recorder.close()
    # + the mode once, and repeated at the start of the three later segments
    assert (summary.status, summary.segments, summary.messages) == ('complete', 4, sent + 4)
    assert summary.line() == f'{out}: 4 segments, {sent + 4} messages, 3.5 s'

    bags = sorted((out / live.EPISODES).iterdir())
    assert [b.name for b in bags] == [f'rec_20261207T161320Z_{i:04d}' for i in range(4)]
    received = []
    for bag in bags:
        info = rec.read_info(bag)
        assert info.format_version == rec.FORMAT_VERSION and rec.storage_problem(info) is None
        assert json.loads(info.custom_data[live.SEGMENT_KEY])['recording'] == 'rec_20261207T161320Z'
        with Reader(bag) as reader:  # plain rosbags: the bags are standard
            assert reader.message_count == sum(info.message_counts.values())
        messages = list(rec.read_messages(bag))
        # Every segment says the mode it starts in (a latched topic), at its own first time.
        first_topic, first_ns, first = messages[0]
        assert (first_topic, first.data) == (rec.MODE, 'manual')
        assert first_ns == min(ns for _, ns, _ in messages)
        assert sum(t == rec.MODE for t, _, _ in messages) == 1
        received += [(t, ns, m) for t, ns, m in messages if t == rec.TELEOP_CMD_VEL]
    assert [ns for _, ns, _ in received] == [EPOCH_NS + i * 10 * MS for i in range(sent)]
    assert [round(m.twist.linear.x, 6) for _, _, m in received] == [round(0.1 * i, 6) for i in range(sent)]
    assert [rec.stamp_to_ns(m.header.stamp) for _, _, m in received] == [EPOCH_NS + i * MS for i in range(sent)]

    manifest = live.read_manifest(out)
    assert manifest['status'] == 'complete' and manifest['recording_format_version'] == 2
    assert [s['bag'] for s in manifest['segments']] == [f'episodes/{b.name}' for b in bags]
    assert [s['total_messages'] for s in manifest['segments']] == [101, 101, 101, 51]
    assert manifest['totals']['messages_per_topic'] == {rec.TELEOP_CMD_VEL: sent, rec.MODE: 4}
    assert manifest['settings']['split_s'] == 1.0


def test_a_segment_boundary_never_splits_a_stereo_pair(tmp_path):
    out = tmp_path / 'run'
    recorder = _recorder(out, topics=(rec.LEFT_IMAGE, rec.RIGHT_IMAGE, rec.LEFT_INFO, rec.TELEOP_CMD_VEL), split_s=1.0)
    image = np.zeros((2, 2, 3), np.uint8)

    def send(topic, stamp_s, at_s):
        ns = EPOCH_NS + round(stamp_s * 1e9)
        if topic == rec.LEFT_INFO:
            msg = rec.camera_info_msg(2, 2, 1.0, 1.0, 1.0, 1.0, ns, rec.LEFT_OPTICAL_FRAME)
        elif topic == rec.TELEOP_CMD_VEL:
            msg = rec.twist_stamped_msg(0.0, 0.0, ns)
        else:
            msg = rec.image_msg(image, 'rgb8', ns, rec.LEFT_OPTICAL_FRAME)
        data = _cdr(msg, topic)
        assert live.header_stamp_ns(data) == ns
        assert recorder.write(topic, data, EPOCH_NS + round(at_s * 1e9))

    send(rec.LEFT_IMAGE, 0.0, 0.0)
    send(rec.RIGHT_IMAGE, 0.0, 0.001)
    send(rec.LEFT_IMAGE, 0.95, 0.99)
    send(rec.TELEOP_CMD_VEL, 1.0, 1.0)  # the segment is due, but the instant 0.95 is not complete
    assert recorder.tick(EPOCH_NS + 1_001 * MS) is False and recorder.current_segment == 0
    send(rec.RIGHT_IMAGE, 0.95, 1.002)
    send(rec.LEFT_INFO, 0.95, 1.003)
    assert recorder.current_segment == 0
    send(rec.LEFT_IMAGE, 1.05, 1.06)  # a newer instant: the next segment starts with it
    assert recorder.current_segment == 1
    send(rec.RIGHT_IMAGE, 1.05, 1.061)
    recorder.tick(EPOCH_NS + 2_060 * MS)  # due, camera going on: waits for the next instant
    assert recorder.current_segment == 1
    recorder.tick(EPOCH_NS + 3_060 * MS)  # the camera went quiet: closed after INSTANT_HOLD_S
    assert recorder.current_segment is None
    recorder.close()
    bags = sorted((out / live.EPISODES).iterdir())
    assert len(bags) == 2
    stamps = [sorted((t, rec.stamp_to_ns(m.header.stamp) - EPOCH_NS) for t, _, m in rec.read_messages(b)) for b in bags]
    assert stamps[0] == sorted([(rec.LEFT_IMAGE, 0), (rec.RIGHT_IMAGE, 0), (rec.LEFT_IMAGE, 950 * MS),
                                (rec.RIGHT_IMAGE, 950 * MS), (rec.LEFT_INFO, 950 * MS),
                                (rec.TELEOP_CMD_VEL, 1000 * MS)])
    assert stamps[1] == sorted([(rec.LEFT_IMAGE, 1050 * MS), (rec.RIGHT_IMAGE, 1050 * MS)])


def test_duration_stops_and_idle_time_closes_the_segment(tmp_path):
    out = tmp_path / 'run'
    recorder = _recorder(out, topics=(rec.TELEOP_CMD_VEL,), split_s=0.5, duration_s=2.0)
    assert recorder.write(rec.TELEOP_CMD_VEL, _teleop(0), EPOCH_NS + 100 * MS)
    assert recorder.tick(EPOCH_NS + 700 * MS) is False  # segment 0 is due: closed while idle
    assert recorder.tick(EPOCH_NS + 1999 * MS) is False
    assert recorder.tick(EPOCH_NS + 2000 * MS) is True
    assert recorder.write(rec.TELEOP_CMD_VEL, _teleop(1), EPOCH_NS + 2001 * MS) is False  # after the end
    summary = recorder.close(EPOCH_NS + 2100 * MS)
    assert (summary.segments, summary.messages, summary.duration_s) == (1, 1, 2.0)
    assert len(list((out / live.EPISODES).iterdir())) == 1


def test_data_info_reads_a_recording(tmp_path, capsys):
    out = tmp_path / 'run'
    recorder = _recorder(out, split_s=1.0)
    image = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    for i in range(20):
        ns = EPOCH_NS + i * 100 * MS
        left = rec.image_msg(image, 'rgb8', ns, rec.LEFT_OPTICAL_FRAME)
        recorder.write(rec.LEFT_IMAGE, _cdr(left, rec.LEFT_IMAGE), ns)
        recorder.write(rec.LEFT_INFO, _cdr(rec.camera_info_msg(8, 6, 5.0, 5.0, 4.0, 3.0, ns, rec.LEFT_OPTICAL_FRAME),
                                           rec.LEFT_INFO), ns)
        recorder.write(rec.TELEOP_CMD_VEL, _teleop(i), ns)
    recorder.close()
    assert dave_main(['data', 'info', str(out), '--json']) == 0
    document = json.loads(capsys.readouterr().out)
    assert [r['frames'] for r in document['bags']] == [10, 10]
    assert document['bags'][0]['image_width'] == 8 and document['bags'][0]['seed'] is None
    assert document['totals']['frames'] == 20 and document['totals']['complete_records'] is False
    assert dave_main(['data', 'info', str(out)]) == 0
    table = capsys.readouterr().out
    assert 'rec_20261207T161320Z_0001' in table and f'{rec.TELEOP_CMD_VEL} 20' in table


def test_an_existing_recording_is_refused_never_overwritten(tmp_path):
    out = tmp_path / 'run'
    recorder = _recorder(out, topics=(rec.TELEOP_CMD_VEL,))
    recorder.write(rec.TELEOP_CMD_VEL, _teleop(0), EPOCH_NS)
    before = (out / live.MANIFEST).read_bytes()
    with pytest.raises(live.RecordError, match=f'{out} already holds a recording'):
        live.LiveRecorder(out, live.RecordSettings())
    # A second recorder that checked before the first one claimed OUT still cannot start.
    late = live.LiveRecorder(tmp_path / 'other', live.RecordSettings())
    late.out = out
    with pytest.raises(live.RecordError, match='already holds a recording'):
        late.start(EPOCH_NS)
    assert (out / live.MANIFEST).read_bytes() == before
    recorder.close()
    with pytest.raises(live.RecordError, match='is a file'):
        live.check_out(out / live.MANIFEST)


def test_a_write_error_names_the_file_and_keeps_finished_segments(tmp_path, monkeypatch):
    out = tmp_path / 'run'
    recorder = _recorder(out, topics=(rec.TELEOP_CMD_VEL,), split_s=1.0)
    for i in range(10):
        recorder.write(rec.TELEOP_CMD_VEL, _teleop(i), EPOCH_NS + i * 100 * MS)
    recorder.write(rec.TELEOP_CMD_VEL, _teleop(10), EPOCH_NS + 1000 * MS)  # opens segment 1

    def disk_full(*args):
        raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(recorder._writer, 'write_cdr', disk_full)
    with pytest.raises(live.RecordError) as failure:
        recorder.write(rec.TELEOP_CMD_VEL, _teleop(11), EPOCH_NS + 1100 * MS)
    message = str(failure.value)
    assert f'{recorder.segment_path(1)} (No space left on device)' in message and '\n' not in message
    with pytest.raises(live.RecordError, match='No space left'):  # stays failed
        recorder.tick(EPOCH_NS + 1200 * MS)
    summary = recorder.close()
    assert summary.status == 'failed' and summary.error == message
    assert [p.name for p in (out / live.EPISODES).iterdir()] == [recorder.segment_path(0).name]
    assert rec.read_info(recorder.segment_path(0)).message_counts == {rec.TELEOP_CMD_VEL: 10}
    manifest = live.read_manifest(out)
    assert manifest['status'] == 'failed' and manifest['error'] == message
    assert manifest['totals']['segments'] == 1


@pytest.mark.parametrize('kwargs, needle', [
    ({'topics': ()}, 'topics is empty'),
    ({'topics': ('/nope',)}, "unknown topic '/nope'"),
    ({'topics': (rec.ODOM, rec.ODOM)}, 'twice'),
    ({'split_s': 0.0}, 'split_s'),
    ({'duration_s': -1.0}, 'duration_s'),
    ({'split_s': float('nan')}, 'split_s'),
])
def test_bad_settings_are_named(kwargs, needle):
    with pytest.raises(live.RecordError, match=needle):
        live.RecordSettings(**kwargs)


def test_topic_lists_are_parsed_and_checked():
    assert live.parse_topics(' /odom, /teleop/cmd_vel,/odom ') == (rec.ODOM, rec.TELEOP_CMD_VEL)
    with pytest.raises(live.RecordError, match="unknown topic '/odm'"):
        live.parse_topics('/odom,/odm')
    with pytest.raises(live.RecordError, match='empty'):
        live.parse_topics(' , ')


def test_cli_refuses_an_existing_recording_and_unknown_topics(tmp_path, capsys):
    out = tmp_path / 'run'
    recorder = _recorder(out, topics=(rec.TELEOP_CMD_VEL,))
    recorder.close()
    before = sorted(p.name for p in out.rglob('*'))
    assert dave_main(['record', '--out', str(out)]) == 2
    assert capsys.readouterr().err.strip() == (f'dave record: error: {out} already holds a recording '
                                               f'({out / live.MANIFEST}); dave record never overwrites: '
                                               'choose another --out')
    assert sorted(p.name for p in out.rglob('*')) == before
    assert dave_main(['record', '--out', str(tmp_path / 'new'), '--topics', '/odom,/teleop/cmd_vl']) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("dave record: error: unknown topic '/teleop/cmd_vl'")
    assert dave_main(['record', '--out', str(tmp_path / 'new'), '--split', '0']) == 2
    assert capsys.readouterr().err.startswith('dave record: error: --split must be a number of seconds > 0')
    assert dave_main(['record', '--out', str(tmp_path / 'new'), '--duration', '-1']) == 2
    assert capsys.readouterr().err.startswith('dave record: error: --duration must be')
    assert not (tmp_path / 'new').exists()
