"""StereoSynchronizer: exact and approximate pairing, ordering, drops, bounded memory (no ROS)."""
import random
import threading

import pytest

from dave_core.stereo_sync import StereoPair, StereoSyncStats, StereoSynchronizer

MS = 1_000_000
PERIOD = 33 * MS  # ~30 Hz


def test_identical_stamps_pair_exactly_whichever_side_comes_first():
    sync = StereoSynchronizer(max_skew_ns=0)
    assert sync.push_left(100, 'L0') is None
    assert sync.push_right(100, 'R0') == StereoPair(100, 'L0', 'R0', 0)
    assert sync.push_right(200, 'R1') is None
    assert sync.push_left(200, 'L1') == StereoPair(200, 'L1', 'R1', 0)
    assert sync.stats == StereoSyncStats(pairs=2, dropped_left=0, dropped_right=0)
    assert sync.pending == (0, 0)


def test_exact_match_preferred_over_a_closer_looking_neighbour():
    sync = StereoSynchronizer(max_skew_ns=10 * MS)
    sync.push_right(1_000 * MS - 1, 'R_early')
    sync.push_right(1_000 * MS, 'R_exact')
    pair = sync.push_left(1_000 * MS, 'L')
    assert (pair.right, pair.skew_ns) == ('R_exact', 0)
    # R_early is older than the pair: it can never pair in order any more.
    assert sync.stats.dropped_right == 1 and sync.pending == (0, 0)


def test_skew_within_tolerance_pairs_and_reports_skew_and_left_stamp():
    sync = StereoSynchronizer(max_skew_ns=5 * MS)
    sync.push_left(1_000 * MS, 'L')
    pair = sync.push_right(1_004 * MS, 'R')
    assert pair == StereoPair(stamp_ns=1_000 * MS, left='L', right='R', skew_ns=4 * MS)
    sync.push_right(2_000 * MS, 'R2')
    pair = sync.push_left(2_000 * MS + 5 * MS, 'L2')  # exactly at the limit still pairs
    assert pair == StereoPair(2_005 * MS, 'L2', 'R2', 5 * MS)


def test_skew_outside_tolerance_does_not_pair():
    sync = StereoSynchronizer(max_skew_ns=5 * MS)
    assert sync.push_left(1_000 * MS, 'L') is None
    assert sync.push_right(1_000 * MS + 5 * MS + 1, 'R') is None
    assert sync.pending == (1, 1)
    assert sync.stats.pairs == 0


def test_closest_candidate_wins():
    sync = StereoSynchronizer(max_skew_ns=10 * MS)
    sync.push_right(102 * MS, 'R_a')
    sync.push_right(115 * MS, 'R_b')
    pair = sync.push_left(111 * MS, 'L')
    assert (pair.right, pair.skew_ns) == ('R_b', 4 * MS)
    assert sync.stats.dropped_right == 1  # R_a is older than the pair


def test_older_candidate_wins_a_tie_and_the_newer_stays_queued():
    sync = StereoSynchronizer(max_skew_ns=10 * MS)
    sync.push_right(105 * MS, 'R_a')
    sync.push_right(115 * MS, 'R_b')
    assert sync.push_left(110 * MS, 'L').right == 'R_a'
    assert sync.pending == (0, 1)
    assert sync.push_left(116 * MS, 'L2').right == 'R_b'


def test_free_running_cameras_with_constant_offset_pair_every_frame():
    sync = StereoSynchronizer(max_skew_ns=8 * MS)
    pairs = []
    for i in range(50):
        for side, stamp in (('L', i * PERIOD), ('R', i * PERIOD + 6 * MS)):
            push = sync.push_left if side == 'L' else sync.push_right
            pair = push(stamp, f'{side}{i}')
            if pair is not None:
                pairs.append(pair)
    assert [(p.left, p.right) for p in pairs] == [(f'L{i}', f'R{i}') for i in range(50)]
    assert all(p.skew_ns == 6 * MS for p in pairs)
    assert sync.stats == StereoSyncStats(pairs=50, dropped_left=0, dropped_right=0)


def test_out_of_order_arrivals_within_a_stream_still_pair_correctly():
    sync = StereoSynchronizer(max_skew_ns=0)
    sync.push_left(2 * PERIOD, 'L2')
    sync.push_left(1 * PERIOD, 'L1')  # arrives after L2
    assert sync.push_right(1 * PERIOD, 'R1') == StereoPair(PERIOD, 'L1', 'R1', 0)
    assert sync.push_right(2 * PERIOD, 'R2') == StereoPair(2 * PERIOD, 'L2', 'R2', 0)
    assert sync.stats.dropped_left == sync.stats.dropped_right == 0


def test_one_camera_lagging_by_several_frames_still_pairs_every_frame():
    rng = random.Random(3)
    sync = StereoSynchronizer(max_skew_ns=0, queue_size=8)
    left, right = list(range(300)), list(range(300))
    pairs = []
    # Each topic arrives in order (as DDS delivers one writer's samples) but the two streams
    # interleave at random, one running up to 7 frames ahead of the other.
    while left or right:
        lag = (300 - len(left)) - (300 - len(right))
        take_left = bool(left) and (not right or (lag < 7 and (lag <= -7 or rng.random() < 0.5)))
        queue, push, name = ((left, sync.push_left, 'L') if take_left
                             else (right, sync.push_right, 'R'))
        i = queue.pop(0)
        pair = push(i * PERIOD, (name, i))
        if pair is not None:
            pairs.append(pair)
    assert [(p.left, p.right) for p in pairs] == [(('L', i), ('R', i)) for i in range(300)]
    assert sync.stats == StereoSyncStats(pairs=300, dropped_left=0, dropped_right=0)


def test_shuffled_arrivals_never_mispair_and_every_frame_is_accounted_for():
    rng = random.Random(7)
    sync = StereoSynchronizer(max_skew_ns=0, queue_size=8)
    events = [(side, i * PERIOD) for i in range(200) for side in 'LR']
    # Shuffle within windows of 6 events (3 frame periods), reordering inside each stream too.
    for start in range(0, len(events), 6):
        window = events[start:start + 6]
        rng.shuffle(window)
        events[start:start + 6] = window
    pairs = []
    for side, stamp in events:
        pair = (sync.push_left if side == 'L' else sync.push_right)(stamp, (side, stamp))
        if pair is not None:
            pairs.append(pair)
    stamps = [p.stamp_ns for p in pairs]
    assert stamps == sorted(set(stamps)), 'pairs must come out strictly in time order'
    for p in pairs:
        assert p.left == ('L', p.stamp_ns) and p.right == ('R', p.stamp_ns)
    stats = sync.stats
    # Every frame is paired exactly once, counted as dropped, or still pending: none vanishes.
    assert stats.pairs + stats.dropped_left + sync.pending[0] == 200
    assert stats.pairs + stats.dropped_right + sync.pending[1] == 200
    # A frame whose successor paired first is dropped to keep time order; most still pair.
    assert stats.pairs >= 100


def test_a_frame_is_never_paired_twice():
    sync = StereoSynchronizer(max_skew_ns=5 * MS)
    assert sync.push_left(100 * MS, 'L') is None
    assert sync.push_right(100 * MS, 'R1') is not None
    # Another right frame that would fit L: L is gone, so no second pair with it.
    assert sync.push_right(102 * MS, 'R2') is None
    # A duplicate push of the same left stamp is late (at/before the last pair) and dropped.
    assert sync.push_left(100 * MS, 'L_again') is None
    assert sync.stats == StereoSyncStats(pairs=1, dropped_left=1, dropped_right=0)
    assert sync.pending == (0, 1)


def test_unmatched_older_frames_are_dropped_and_counted_when_a_newer_pair_forms():
    sync = StereoSynchronizer(max_skew_ns=0)
    for i in range(3):
        sync.push_left(i * PERIOD, f'L{i}')  # their right partners never come
    sync.push_right(10 * PERIOD - 1, 'R_orphan')
    pair = sync.push_right(10 * PERIOD, 'R10')
    assert pair is None
    pair = sync.push_left(10 * PERIOD, 'L10')
    assert pair.stamp_ns == 10 * PERIOD
    assert sync.stats == StereoSyncStats(pairs=1, dropped_left=3, dropped_right=1)
    assert sync.pending == (0, 0)
    # A late partner of a dropped frame is dropped too, not paired out of order.
    assert sync.push_right(1 * PERIOD, 'R1_late') is None
    assert sync.stats.dropped_right == 2


def test_queues_stay_bounded_when_one_camera_is_dead():
    sync = StereoSynchronizer(max_skew_ns=1 * MS, queue_size=4)
    for i in range(1_000):
        assert sync.push_left(i * PERIOD, bytearray(16)) is None
    assert sync.pending == (4, 0)
    assert sync.stats.dropped_left == 996
    # The newest frames are the ones kept: a right frame for the last one pairs.
    assert sync.push_right(999 * PERIOD, 'R').stamp_ns == 999 * PERIOD


def test_reset_forgets_history_so_a_clock_jump_back_pairs_again():
    sync = StereoSynchronizer(max_skew_ns=0)
    sync.push_left(5_000 * MS, 'L')
    sync.push_right(5_000 * MS, 'R')
    assert sync.push_left(10 * MS, 'L_after_reset') is None
    assert sync.stats.dropped_left == 1
    sync.reset()
    assert sync.stats == StereoSyncStats(0, 0, 0)
    sync.push_left(10 * MS, 'L')
    assert sync.push_right(10 * MS, 'R').stamp_ns == 10 * MS


def test_concurrent_pushes_from_two_threads_pair_every_frame_once():
    sync = StereoSynchronizer(max_skew_ns=0, queue_size=2_000)
    pairs: list[StereoPair] = []
    lock = threading.Lock()

    def feed(push, name):
        for i in range(1_000):
            pair = push(i * PERIOD, (name, i))
            if pair is not None:
                with lock:
                    pairs.append(pair)

    threads = [threading.Thread(target=feed, args=(sync.push_left, 'L')),
               threading.Thread(target=feed, args=(sync.push_right, 'R'))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    assert len(pairs) == 1_000
    assert sorted(p.left[1] for p in pairs) == list(range(1_000))
    assert all(p.left[1] == p.right[1] for p in pairs)


@pytest.mark.parametrize('kwargs, culprit', [
    ({'max_skew_ns': -1}, 'max_skew_ns'),
    ({'max_skew_ns': 0.5}, 'max_skew_ns'),
    ({'queue_size': 0}, 'queue_size'),
    ({'queue_size': True}, 'queue_size'),
])
def test_bad_settings_name_the_culprit(kwargs, culprit):
    with pytest.raises(ValueError, match=culprit):
        StereoSynchronizer(**kwargs)


@pytest.mark.parametrize('stamp, error', [(1.5, TypeError), ('1', TypeError), (True, TypeError),
                                          (-1, ValueError)])
def test_bad_stamps_are_rejected(stamp, error):
    sync = StereoSynchronizer()
    with pytest.raises(error, match='stamp_ns'):
        sync.push_left(stamp, 'L')
    assert sync.pending == (0, 0)
