"""Pairs left and right camera frames by timestamp (approximate time, no ROS, time injected in ns).

message_filters is not available as a wheel, and the nodes need a pairing policy they can test
without DDS: this is it. A frame is paired the moment its partner is there, so a stereo camera
that stamps both eyes identically gets its pairs with zero added latency.

Policy, for each pushed frame:
- an identical stamp on the other side pairs exactly; otherwise the closest queued frame of the
  other side within `max_skew_ns` (the older one on a tie);
- a frame stamped at or before the last paired frame of its side is dropped: pairing it would
  emit pairs out of time order;
- after a pair, queued frames stamped at or before it on either side are dropped, for the same
  reason;
- each side keeps at most `queue_size` unmatched frames, the oldest is dropped first.
Frames are removed when paired, so no frame is ever paired twice.

Because every push either pairs or leaves no partner within `max_skew_ns`, the queues never hold
a pairable couple; with `max_skew_ns` below half the frame period a frame has at most one
candidate, and the immediate pairing is also the best one.
"""
from __future__ import annotations

import bisect
import operator
import threading
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar('T')


@dataclass(frozen=True, slots=True)
class StereoPair(Generic[T]):
    """A left and a right frame taken together; `stamp_ns` is the left (reference) camera's."""

    stamp_ns: int
    left: T
    right: T
    skew_ns: int  # |right stamp - left stamp|, 0 for a hardware-synchronised pair


@dataclass(frozen=True, slots=True)
class StereoSyncStats:
    """Counters since construction or the last `reset()`."""

    pairs: int
    dropped_left: int
    dropped_right: int


@dataclass(slots=True)
class _Side(Generic[T]):
    """Unmatched frames of one camera, sorted by (stamp, seq); seq avoids comparing items."""

    entries: list[tuple[int, int, T]] = field(default_factory=list)
    last_paired_ns: int | None = None
    dropped: int = 0

    def drop_through(self, stamp_ns: int) -> None:
        """Drop frames stamped at or before `stamp_ns`; they could only pair out of order."""
        cut = bisect.bisect_right(self.entries, (stamp_ns, float('inf')))
        self.dropped += cut
        del self.entries[:cut]


def _stamp(stamp_ns: int) -> int:
    if isinstance(stamp_ns, bool):
        raise TypeError(f'stamp_ns must be an int of nanoseconds, got {stamp_ns!r}')
    try:
        value = operator.index(stamp_ns)
    except TypeError:
        raise TypeError(f'stamp_ns must be an int of nanoseconds, '
                        f'got {type(stamp_ns).__name__} {stamp_ns!r}') from None
    if value < 0:
        raise ValueError(f'stamp_ns must be >= 0, got {value}')
    return value


class StereoSynchronizer(Generic[T]):
    """Approximate-time pairing of left/right frames; safe to call from several executor threads."""

    def __init__(self, max_skew_ns: int = 10_000_000, queue_size: int = 5) -> None:
        # Defaults: 10 ms is under half the frame period of cameras up to 50 Hz, so a frame never
        # reaches its partner's neighbour; 5 queued frames (~170 ms at 30 Hz) outlast any
        # transport jitter, and a partner later than that is too stale to drive on.
        if isinstance(max_skew_ns, bool) or not isinstance(max_skew_ns, int) or max_skew_ns < 0:
            raise ValueError(f'max_skew_ns must be an int >= 0, got {max_skew_ns!r}')
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError(f'queue_size must be an int >= 1, got {queue_size!r}')
        self.max_skew_ns = max_skew_ns
        self.queue_size = queue_size
        self._lock = threading.Lock()
        self._seq = 0
        self._pairs = 0
        self._left: _Side[T] = _Side()
        self._right: _Side[T] = _Side()

    def push_left(self, stamp_ns: int, item: T) -> StereoPair[T] | None:
        """Offer a left frame; returns the pair it completes, if any."""
        return self._push(_stamp(stamp_ns), item, is_left=True)

    def push_right(self, stamp_ns: int, item: T) -> StereoPair[T] | None:
        """Offer a right frame; returns the pair it completes, if any."""
        return self._push(_stamp(stamp_ns), item, is_left=False)

    @property
    def stats(self) -> StereoSyncStats:
        with self._lock:
            return StereoSyncStats(self._pairs, self._left.dropped, self._right.dropped)

    @property
    def pending(self) -> tuple[int, int]:
        """Unmatched frames currently held: (left, right)."""
        with self._lock:
            return len(self._left.entries), len(self._right.entries)

    def reset(self) -> None:
        """Forget queued frames, history and counters, e.g. after the clock jumped back."""
        with self._lock:
            self._left, self._right = _Side(), _Side()
            self._pairs = 0

    def _push(self, stamp_ns: int, item: T, is_left: bool) -> StereoPair[T] | None:
        with self._lock:
            own, other = (self._left, self._right) if is_left else (self._right, self._left)
            if own.last_paired_ns is not None and stamp_ns <= own.last_paired_ns:
                own.dropped += 1
                return None
            match = self._closest(other.entries, stamp_ns)
            if match is None:
                self._seq += 1
                bisect.insort(own.entries, (stamp_ns, self._seq, item))
                if len(own.entries) > self.queue_size:
                    del own.entries[0]
                    own.dropped += 1
                return None
            other_stamp, _, other_item = other.entries.pop(match)
            own.drop_through(stamp_ns)
            other.drop_through(other_stamp)
            own.last_paired_ns, other.last_paired_ns = stamp_ns, other_stamp
            self._pairs += 1
            if is_left:
                return StereoPair(stamp_ns, item, other_item, abs(other_stamp - stamp_ns))
            return StereoPair(other_stamp, other_item, item, abs(other_stamp - stamp_ns))

    def _closest(self, entries: list[tuple[int, int, T]], stamp_ns: int) -> int | None:
        """Index of the entry nearest `stamp_ns` within max skew (older wins a tie), or None."""
        i = bisect.bisect_left(entries, (stamp_ns,))
        best: int | None = None
        best_distance = self.max_skew_ns + 1
        # Only the neighbours around the insertion point can be nearest; i - 1 first so that
        # the older entry wins an equal distance.
        for j in (i - 1, i):
            if 0 <= j < len(entries):
                distance = abs(entries[j][0] - stamp_ns)
                if distance < best_distance:
                    best, best_distance = j, distance
        return best
