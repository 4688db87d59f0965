"""Live recording (`dave record`) without ROS: subscription QoS, segments, manifest, counting, stop.

The record node hands every received message to `LiveRecorder.write` as the serialized CDR bytes
it got from DDS, with its receive time on the node clock (sim time under use_sim_time), and calls
`tick` periodically; everything else lives here so it is tested without ROS. Layout of OUT:

    OUT/manifest.json                          settings, status, one entry per finished segment
    OUT/episodes/rec_20261207T163000Z_0000/    a complete rosbag2 (MCAP) bag: metadata.yaml + .mcap
    OUT/episodes/rec_20261207T163000Z_0001/    the next `split_s` of recording time, ...

`dave data info OUT` reads it like a `dave collect` directory (the bags are under episodes/).

Crash guarantee: a segment is written under a hidden name and renamed when complete
(dave_core.recording.RecordingWriter), and manifest.json is replaced atomically after each
segment, so a crash or power cut loses at most the segment being written; every bag under its
final name opens. A segment is opened at its first message (no empty bags) and closed on a
background thread, so receiving continues while the previous segment is flushed to disk.

Segments never split a camera instant: the messages of one instant (left and right image, their
camera_info, labels) share a header stamp (ARCHITECTURE.md) and the data tools pair them within a
bag, so a due segment ends when the first message of a newer instant arrives (or, with no camera
traffic, at most INSTANT_HOLD_S later).

Latched topics (/dave/mode, /dave/intervention, /sim/collisions) are states published once per
change; a segment would not know the mode it starts in. So each new segment begins with the
newest message of every latched topic, repeated at the segment's first time (as rosbag2's
`--repeated-transient-local` does): each bag can be read alone.
"""
from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rosbags.interfaces import QosDurability

from dave_core import recording as rec
from dave_core.atomic_file import atomic_write_text

MANIFEST_FORMAT = 'dave-record'
MANIFEST_VERSION = 1
MANIFEST = 'manifest.json'
EPISODES = 'episodes'  # the name `dave collect` uses, so the data tools find the bags
SEGMENT_KEY = 'dave.record'  # bag custom_data: recording name, segment index, settings (JSON)

# Streams recorded best-effort: a best-effort reader matches reliable and best-effort publishers
# (camera drivers often publish best-effort; a reliable reader would silently get nothing).
SENSOR_TYPES = frozenset({'sensor_msgs/msg/Image', 'sensor_msgs/msg/CameraInfo', 'nav_msgs/msg/Odometry'})
# Reader queues: deep enough to ride out a slow write (images ~0.7 s at 15 Hz, 50 Hz odometry
# ~2 s); DDS drops the oldest sample when a best-effort queue overflows.
IMAGE_DEPTH = 10
SMALL_DEPTH = 100
LATCHED_DEPTH = 10
# Topics whose messages belong to a camera instant (same header stamp across topics).
INSTANT_TYPES = frozenset({'sensor_msgs/msg/Image', 'sensor_msgs/msg/CameraInfo'})
# How long a due segment waits for the next camera instant before it is closed anyway.
INSTANT_HOLD_S = 1.0


class RecordError(Exception):
    """A recording that cannot start or continue; the message names the directory or file."""


@dataclass(frozen=True)
class SubscriptionQos:
    """QoS of the recorder's subscription to one topic (the node turns it into an rclpy profile)."""

    reliable: bool
    transient_local: bool
    depth: int


def subscription_qos(topic: str) -> SubscriptionQos:
    """The subscription QoS that receives `topic` from the publishers the contract allows.

    Latched topics (/dave/mode, /dave/intervention, /sim/collisions): reliable + transient local,
    so the value published before the recorder started is delivered too. Sensor streams:
    best-effort, matching any publisher. Commands and events: reliable, so none is dropped.
    """
    spec = _spec(topic)
    if spec.qos.durability == QosDurability.TRANSIENT_LOCAL:
        return SubscriptionQos(reliable=True, transient_local=True, depth=LATCHED_DEPTH)
    if spec.msgtype in SENSOR_TYPES:
        depth = IMAGE_DEPTH if spec.msgtype == 'sensor_msgs/msg/Image' else SMALL_DEPTH
        return SubscriptionQos(reliable=False, transient_local=False, depth=depth)
    return SubscriptionQos(reliable=True, transient_local=False, depth=SMALL_DEPTH)


def _spec(topic: str) -> rec.TopicSpec:
    spec = rec.TOPICS.get(topic)
    if spec is None:
        raise RecordError(f'unknown topic {topic!r}: not in the recording format (known: {", ".join(rec.TOPICS)})')
    return spec


def header_stamp_ns(data: bytes | memoryview) -> int | None:
    """std_msgs/Header stamp of a CDR message that starts with a header (None if it cannot be one).

    CDR: a 4-byte encapsulation (byte 1: 0 big-, 1 little-endian), then stamp.sec (int32) and
    stamp.nanosec (uint32); read in place, without deserializing an image.
    """
    head = bytes(memoryview(data)[:12])
    if len(head) < 12 or head[0] != 0 or head[1] not in (0, 1):
        return None
    order = 'little' if head[1] == 1 else 'big'
    sec = int.from_bytes(head[4:8], order, signed=True)
    nanosec = int.from_bytes(head[8:12], order)
    return sec * 1_000_000_000 + nanosec


def parse_topics(text: str) -> tuple[str, ...]:
    """`--topics` of dave record: a comma list of format topics, in order, duplicates dropped."""
    topics = tuple(dict.fromkeys(t.strip() for t in text.split(',') if t.strip()))
    if not topics:
        raise RecordError('--topics is empty; give a comma list of topics')
    for topic in topics:
        _spec(topic)
    return topics


@dataclass(frozen=True)
class RecordSettings:
    """What a recording records and how it is cut (stored in the manifest and in each bag)."""

    topics: tuple[str, ...] = rec.RECORD_TOPICS
    split_s: float = 60.0  # segment length: a crash loses at most this much recording
    duration_s: float = 0.0  # 0: until stopped
    compress: bool = True  # zstd MCAP chunks (~4x smaller images for ~1.5 ms of CPU a frame)

    def __post_init__(self) -> None:
        object.__setattr__(self, 'topics', tuple(self.topics))
        if not self.topics:
            raise RecordError('topics is empty; nothing to record')
        for topic in self.topics:
            _spec(topic)
        if len(set(self.topics)) != len(self.topics):
            raise RecordError(f'topics lists a topic twice: {", ".join(self.topics)}')
        if not (_number(self.split_s) and math.isfinite(self.split_s) and self.split_s > 0):
            raise RecordError(f'split_s must be a number of seconds > 0, got {self.split_s!r}')
        if not (_number(self.duration_s) and math.isfinite(self.duration_s) and self.duration_s >= 0):
            raise RecordError(f'duration_s must be a number of seconds >= 0 (0: until stopped), '
                              f'got {self.duration_s!r}')

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), 'topics': list(self.topics)}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_out(out: str | os.PathLike) -> Path:
    """`out` if a new recording may go there (new or an empty directory), else a RecordError naming it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RecordError(f'{out} is a file, not a directory; choose another --out')
    for name in (MANIFEST, EPISODES):
        if (out / name).exists():
            raise RecordError(f'{out} already holds a recording ({out / name}); dave record never '
                              'overwrites: choose another --out')
    return out


def recording_name(wall_time_s: float) -> str:
    """rec_<UTC start>, e.g. rec_20261207T163000Z: segment names sort in time order."""
    return 'rec_' + time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(wall_time_s))


RECORDING_NAME_RE = re.compile(r'rec_(\d{8})T(\d{6})Z')  # what recording_name writes


def recording_id(name: str) -> int | None:
    """The UTC start of the recording a segment `name` belongs to as a number (rec_20261207T163000Z_0003
    -> 20261207163000), the same for all its segments; None for another name."""
    match = RECORDING_NAME_RE.search(name)
    return int(match.group(1) + match.group(2)) if match else None


@dataclass(frozen=True)
class RecordSummary:
    """What a finished (or failed) recording holds."""

    out: Path
    status: str  # 'complete' or 'failed'
    segments: int
    messages: int
    duration_s: float  # recording time from start to stop (node clock)
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def line(self) -> str:
        """The one summary line `dave record` prints."""
        return (f'{self.out}: {self.segments} segment{"s" if self.segments != 1 else ""}, '
                f'{self.messages} messages, {self.duration_s:.1f} s')


class LiveRecorder:
    """Writes received CDR messages into rotating segment bags under OUT/episodes plus OUT/manifest.json.

    Not thread-safe for callers: call `start`, `write`, `tick` and `close` from one thread (the
    node's executor thread). Failures surface as RecordError from `write` / `tick`; `close` always
    leaves the finished segments and a manifest describing them.
    """

    def __init__(self, out: str | os.PathLike, settings: RecordSettings, *,
                 wall_time_s: float | None = None, extra: Mapping[str, Any] | None = None) -> None:
        self.out = check_out(out)
        self.settings = settings
        self.name = recording_name(time.time() if wall_time_s is None else wall_time_s)
        self.extra = dict(extra or {})  # e.g. use_sim_time, stored in the manifest settings
        self._split_ns = round(settings.split_s * 1e9)
        self._hold_ns = round(INSTANT_HOLD_S * 1e9)
        self._instant_topics = frozenset(t for t in settings.topics if rec.TOPICS[t].msgtype in INSTANT_TYPES)
        self._latched_topics = frozenset(t for t in settings.topics if subscription_qos(t).transient_local)
        self._latched: dict[str, bytes] = {}  # newest message of each latched topic, repeated per segment
        self._duration_ns = round(settings.duration_s * 1e9)
        self._start_ns: int | None = None
        self._last_ns: int | None = None
        self._writer: rec.RecordingWriter | None = None
        self._segment: dict[str, Any] = {}
        self._next_index = 0
        self._segments: list[dict[str, Any]] = []  # finished ones, in index order
        self.written = dict.fromkeys(settings.topics, 0)  # messages accepted per topic, all segments
        self._lock = threading.Lock()  # _segments, _error and the manifest file, shared with the closer
        self._error: str | None = None
        self._closer = ThreadPoolExecutor(max_workers=1, thread_name_prefix='segment-close')
        self._pending: list[Future] = []
        self._created_utc = _utc_now()
        self._status = 'recording'
        self._started = self._closed = False

    # ------------------------------------------------------------ lifecycle

    def start(self, now_ns: int) -> None:
        """Claim OUT (OUT/episodes is created exclusively, so two recorders cannot share it)."""
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / EPISODES).mkdir()
        except FileExistsError:
            raise RecordError(f'{self.out} already holds a recording ({self.out / EPISODES}); dave record '
                              'never overwrites: choose another --out') from None
        except OSError as exc:
            raise RecordError(f'cannot create {exc.filename or self.out} ({exc.strerror})') from None
        self._started = True
        if now_ns > 0:  # under use_sim_time the clock reads 0 until /clock arrives
            self._start_ns = int(now_ns)
        try:
            self._write_manifest()
        except OSError as exc:
            raise RecordError(f'cannot write {self.out / MANIFEST} ({exc.strerror})') from None

    def write(self, topic: str, data: bytes | memoryview, log_time_ns: int) -> bool:
        """Append one serialized message; False when it arrived after the duration ended (not written)."""
        self._raise_if_failed()
        log_time_ns = int(log_time_ns)
        if self._start_ns is None:
            self._start_ns = log_time_ns
        if self._duration_ns and log_time_ns - self._start_ns >= self._duration_ns:
            return False
        stamp_ns = header_stamp_ns(data) if topic in self._instant_topics else None
        if self._writer is not None and self._rotation_due(log_time_ns, stamp_ns):
            self._rotate()
        if self._writer is None:
            self._open_segment(log_time_ns)
        try:
            self._writer.write_cdr(topic, data, log_time_ns)
        except OSError as exc:
            self._fail_current(exc)
        self.written[topic] += 1
        if topic in self._latched_topics:
            self._latched[topic] = bytes(data)
        segment = self._segment
        segment['end_ns'] = max(segment['end_ns'], log_time_ns)
        if stamp_ns is not None:
            segment['instant_ns'] = max(segment.get('instant_ns', stamp_ns), stamp_ns)
        self._last_ns = log_time_ns if self._last_ns is None else max(self._last_ns, log_time_ns)
        return True

    def tick(self, now_ns: int) -> bool:
        """Close a segment that is due while no message arrives; True when the duration is over."""
        self._raise_if_failed()
        now_ns = int(now_ns)
        if self._start_ns is None and now_ns > 0:
            self._start_ns = now_ns
        if self._writer is not None and self._rotation_due(now_ns, None):
            self._rotate()
        return bool(self._duration_ns and self._start_ns is not None
                    and now_ns - self._start_ns >= self._duration_ns)

    def close(self, now_ns: int | None = None) -> RecordSummary:
        """Finish the current segment, wait for all segments to reach disk, write the final manifest."""
        if self._closed:
            return self.summary()
        self._closed = True
        if now_ns is not None and now_ns > 0:
            self._last_ns = max(self._last_ns or 0, int(now_ns))
        if self._writer is not None and self._error is None:
            self._rotate()
        elif self._writer is not None:
            self._writer.abort()
            self._writer = None
        for future in self._pending:
            future.result()  # the closer records its own failures in self._error
        self._closer.shutdown(wait=True)
        with self._lock:
            self._status = 'failed' if self._error else 'complete'
        if self._started:
            try:
                with self._lock:
                    self._write_manifest()
            except OSError as exc:
                with self._lock:
                    self._error = self._error or f'cannot write {self.out / MANIFEST} ({exc.strerror})'
                    self._status = 'failed'
        return self.summary()

    def summary(self) -> RecordSummary:
        with self._lock:
            segments = list(self._segments)
            error, status = self._error, self._status
        counts = _sum_counts(s['messages'] for s in segments)
        return RecordSummary(self.out, status, len(segments), sum(counts.values()), self._elapsed_s(),
                             counts, error)

    @property
    def current_segment(self) -> int | None:
        """Index of the segment being written, None between segments."""
        return self._segment.get('index') if self._writer is not None else None

    @property
    def failed(self) -> str | None:
        """The error that stopped the recording, or None."""
        with self._lock:
            return self._error

    # ------------------------------------------------------------ segments

    def segment_path(self, index: int) -> Path:
        return self.out / EPISODES / f'{self.name}_{index:04d}'

    def _rotation_due(self, now_ns: int, stamp_ns: int | None) -> bool:
        """Whether the current segment ends before a message (camera stamp `stamp_ns`) at `now_ns`."""
        age_ns = now_ns - self._segment['start_ns']
        if age_ns < self._split_ns:
            return False
        last_instant = self._segment.get('instant_ns')
        if last_instant is None or age_ns >= self._split_ns + self._hold_ns:
            return True  # no camera instant to keep whole, or the camera went quiet
        return stamp_ns is not None and stamp_ns > last_instant  # the first message of a newer instant

    def _open_segment(self, start_ns: int) -> None:
        index = self._next_index
        self._next_index += 1
        path = self.segment_path(index)
        custom = {SEGMENT_KEY: json.dumps({'recording': self.name, 'segment': index,
                                           'settings': self._settings_json()}, sort_keys=True)}
        try:
            self._writer = rec.RecordingWriter(path, self.settings.topics, compress=self.settings.compress,
                                               custom_data=custom)
        except Exception as exc:  # OSError (full disk, permissions) or rosbags' WriterError
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f'{type(exc).__name__}: {exc}'
            self._set_error(f'cannot create segment {path} ({reason}); {self._finished_note()}')
            raise RecordError(self.failed) from None
        self._segment = {'bag': f'{EPISODES}/{path.name}', 'index': index, 'start_ns': start_ns, 'end_ns': start_ns}
        for topic, data in self._latched.items():
            try:
                self._writer.write_cdr(topic, data, start_ns)
            except OSError as exc:
                self._fail_current(exc)

    def _rotate(self) -> None:
        """Hand the current segment to the closer thread; the next message opens a new one."""
        writer, entry = self._writer, self._segment
        self._writer, self._segment = None, {}
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._closer.submit(self._finish_segment, writer, entry))

    def _finish_segment(self, writer: rec.RecordingWriter, entry: dict[str, Any]) -> None:
        try:
            writer.close()  # fsync + atomic rename; on failure it discards the partial bag
        except OSError as exc:
            self._set_error(f'cannot finish segment {writer.path} ({exc.strerror}); {self._finished_note()}')
            return
        except Exception as exc:  # rosbags / zstd raise their own types
            self._set_error(f'cannot finish segment {writer.path} ({type(exc).__name__}: {exc}); '
                            f'{self._finished_note()}')
            return
        entry.pop('instant_ns', None)
        entry = {**entry, 'duration_s': round((entry['end_ns'] - entry['start_ns']) / 1e9, 3),
                 'messages': dict(writer.counts), 'total_messages': sum(writer.counts.values())}
        with self._lock:
            self._segments.append(entry)
            self._segments.sort(key=lambda s: s['index'])
            try:
                self._write_manifest()
            except OSError as exc:
                self._error = self._error or (f'cannot write {self.out / MANIFEST} ({exc.strerror}); '
                                              f'the finished segments under {self.out / EPISODES} are intact')

    def _fail_current(self, exc: OSError) -> None:
        path = self._writer.path
        try:
            self._writer.abort()
        except Exception:  # the disk that failed the write may fail the cleanup too; the error below matters
            pass
        self._writer, self._segment = None, {}
        self._set_error(f'cannot write segment {path} ({exc.strerror or exc}); {self._finished_note()}')
        raise RecordError(self.failed)

    def _finished_note(self) -> str:
        return f'the finished segments under {self.out / EPISODES} are intact'

    def _set_error(self, message: str) -> None:
        with self._lock:
            if self._error is None:
                self._error = message

    def _raise_if_failed(self) -> None:
        error = self.failed
        if error is not None:
            raise RecordError(error)
        if self._closed:
            raise RecordError(f'recording {self.out} is closed')

    # ------------------------------------------------------------ manifest

    def _settings_json(self) -> dict[str, Any]:
        return {**self.settings.to_json(), **self.extra}

    def _elapsed_s(self) -> float:
        if self._start_ns is None or self._last_ns is None:
            return 0.0
        elapsed_ns = max(0, self._last_ns - self._start_ns)
        if self._duration_ns:  # stopping takes a tick; nothing after the duration is recorded
            elapsed_ns = min(elapsed_ns, self._duration_ns)
        return round(elapsed_ns / 1e9, 3)

    def _write_manifest(self) -> None:
        """Replace OUT/manifest.json (caller holds the lock once the closer thread may run)."""
        counts = _sum_counts(s['messages'] for s in self._segments)
        document = {
            'format': MANIFEST_FORMAT,
            'version': MANIFEST_VERSION,
            'recording_format': rec.FORMAT_NAME,
            'recording_format_version': rec.FORMAT_VERSION,
            'name': self.name,
            'created_utc': self._created_utc,
            'updated_utc': _utc_now(),
            'status': self._status,
            'error': self._error,
            'settings': self._settings_json(),
            'totals': {
                'segments': len(self._segments),
                'messages': sum(counts.values()),
                'duration_s': self._elapsed_s(),
                'messages_per_topic': counts,
            },
            'segments': self._segments,
        }
        atomic_write_text(self.out / MANIFEST, json.dumps(document, indent=2) + '\n')


def _sum_counts(all_counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for counts in all_counts:
        for topic, n in counts.items():
            total[topic] = total.get(topic, 0) + int(n)
    return total


def _utc_now() -> str:
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())


def read_manifest(out: str | os.PathLike) -> dict[str, Any]:
    """OUT/manifest.json of a recording; RecordError naming the file if it is missing or foreign."""
    path = Path(out) / MANIFEST
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise RecordError(f'cannot read {path} ({exc.strerror})') from None
    except ValueError as exc:
        raise RecordError(f'{path}: not JSON ({exc})') from None
    if not isinstance(document, dict) or document.get('format') != MANIFEST_FORMAT:
        raise RecordError(f'{path}: not a dave record manifest')
    return document
