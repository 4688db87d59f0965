"""The dave recording format: rosbag2 with MCAP storage, written and read without ROS.

One place fixes what a recording holds, so the simulator collector, the robot's live recorder
and the dataset tools agree: topic names and message types (ARCHITECTURE.md), the QoS each
topic was offered with (what `ros2 bag play` republishes with), frame ids, and how numpy frames
become messages. Messages are the `rosbags` typestore's ROS 2 Kilted definitions (same wire
format as Jazzy for these types), serialized as CDR, so `ros2 bag`, Foxglove and the `mcap`
tools read the files.

Version history (FORMAT_VERSION, stored in metadata.yaml custom_data):
    1  stereo rgb8 + camera_info, /odom, /cmd_vel (applied Twist); simulator extras: expert
       label /expert/cmd_vel (TwistStamped, image stamp), GT /sim/left/labels (mono8 classes
       0/1/2) and /sim/left/depth (32FC1 metres, +inf = nothing), /sim/collisions (UInt32).
    2  adds the human and autonomy topics a live recording (`dave record`) holds: /teleop/cmd_vel
       and /steering/command (TwistStamped), /dave/mode (String, latched), /dave/estop (Bool),
       /dave/intervention (Bool, latched) and /traversability/labels (mono8 classes 0/1/2).
       Version-1 recordings read unchanged (no topic changed name, type or meaning).

A recording is written under a hidden temporary name and moved to its final name only when
complete, so a directory with the final name always opens; `remove_partial_recordings` deletes
what an interrupted writer left behind.
"""
from __future__ import annotations

import math
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
from rosbags.typesys import Stores, get_typestore

from dave_core.atomic_file import fsync_file

FORMAT_NAME = 'dave-recording'
FORMAT_VERSION = 2
# metadata.yaml custom_data keys (rosbag2 keeps custom_data as string -> string).
FORMAT_KEY = 'dave.format'
VERSION_KEY = 'dave.format_version'
ROSBAG2_VERSION = 9  # metadata version written by Jazzy/Kilted's rosbag2
TYPESTORE = Stores.ROS2_KILTED

# Topic names (ARCHITECTURE.md contract; simulator-only topics under /sim and /expert).
LEFT_IMAGE = '/stereo/left/image_raw'
RIGHT_IMAGE = '/stereo/right/image_raw'
LEFT_INFO = '/stereo/left/camera_info'
RIGHT_INFO = '/stereo/right/camera_info'
ODOM = '/odom'
CMD_VEL = '/cmd_vel'
EXPERT_CMD_VEL = '/expert/cmd_vel'
GT_LABELS = '/sim/left/labels'
GT_DEPTH = '/sim/left/depth'
COLLISIONS = '/sim/collisions'
TELEOP_CMD_VEL = '/teleop/cmd_vel'
STEERING_COMMAND = '/steering/command'
MODE = '/dave/mode'
ESTOP = '/dave/estop'
INTERVENTION = '/dave/intervention'
TRAV_LABELS = '/traversability/labels'

LEFT_OPTICAL_FRAME = 'stereo_left_optical_frame'
RIGHT_OPTICAL_FRAME = 'stereo_right_optical_frame'
ODOM_FRAME = 'odom'
BASE_FRAME = 'base_link'

_PARTIAL = '.partial-'
MCAP_MAGIC = b'\x89MCAP0\r\n'  # first and last bytes of every complete MCAP file

# rosbag2 writes "no deadline / lifespan / lease" as the largest rmw duration, not as zero.
_INFINITE = QosTime(sec=9223372036, nsec=854775807)


def _qos(depth: int, durability: QosDurability = QosDurability.VOLATILE) -> Qos:
    return Qos(QosHistory.KEEP_LAST, depth, QosReliability.RELIABLE, durability, _INFINITE, _INFINITE,
               QosLiveliness.AUTOMATIC, _INFINITE, False)


# Offered QoS, as the simulator node publishes: camera streams reliable with a short queue (a
# reliable writer also serves best-effort readers), commands reliable depth 1, the collision
# count latched so a late subscriber learns the current value.
CAMERA_QOS = _qos(2)
COMMAND_QOS = _qos(1)
ODOM_QOS = _qos(10)
LATCHED_QOS = _qos(1, QosDurability.TRANSIENT_LOCAL)
# E-stop is reliable and volatile (the command node's subscription), so any tool's publisher matches.
ESTOP_QOS = _qos(10)


@dataclass(frozen=True)
class TopicSpec:
    """One recorded topic: its name, ROS 2 message type and offered QoS."""

    name: str
    msgtype: str
    qos: Qos
    description: str


TOPICS: dict[str, TopicSpec] = {spec.name: spec for spec in (
    TopicSpec(LEFT_IMAGE, 'sensor_msgs/msg/Image', CAMERA_QOS, 'left rectified image, rgb8'),
    TopicSpec(RIGHT_IMAGE, 'sensor_msgs/msg/Image', CAMERA_QOS, 'right rectified image, rgb8, same stamp'),
    TopicSpec(LEFT_INFO, 'sensor_msgs/msg/CameraInfo', CAMERA_QOS, 'left intrinsics'),
    TopicSpec(RIGHT_INFO, 'sensor_msgs/msg/CameraInfo', CAMERA_QOS, 'right intrinsics, P[3] = -fx * baseline'),
    TopicSpec(ODOM, 'nav_msgs/msg/Odometry', ODOM_QOS, 'odom -> base_link'),
    TopicSpec(CMD_VEL, 'geometry_msgs/msg/Twist', COMMAND_QOS, 'the command the vehicle obeyed'),
    TopicSpec(EXPERT_CMD_VEL, 'geometry_msgs/msg/TwistStamped', COMMAND_QOS,
              'clean expert command (training label), stamped with its image'),
    TopicSpec(GT_LABELS, 'sensor_msgs/msg/Image', CAMERA_QOS, 'left-camera classes, mono8 0/1/2'),
    TopicSpec(GT_DEPTH, 'sensor_msgs/msg/Image', CAMERA_QOS, 'left-camera depth, 32FC1 metres, +inf = nothing'),
    TopicSpec(COLLISIONS, 'std_msgs/msg/UInt32', LATCHED_QOS, 'collision episodes so far'),
    # Version 2: what a human driving or supervising the robot produces.
    TopicSpec(TELEOP_CMD_VEL, 'geometry_msgs/msg/TwistStamped', COMMAND_QOS, 'human command (keyboard, gamepad)'),
    TopicSpec(STEERING_COMMAND, 'geometry_msgs/msg/TwistStamped', COMMAND_QOS, "the steering net's proposal"),
    TopicSpec(MODE, 'std_msgs/msg/String', LATCHED_QOS, 'manual, auto, shared or estop'),
    TopicSpec(ESTOP, 'std_msgs/msg/Bool', ESTOP_QOS, 'true latches a stop until released'),
    TopicSpec(INTERVENTION, 'std_msgs/msg/Bool', LATCHED_QOS, 'true while a person is in charge (manual, or a shared-mode takeover)'),
    TopicSpec(TRAV_LABELS, 'sensor_msgs/msg/Image', CAMERA_QOS, 'traversability classes, mono8 0/1/2'),
)}

# What the robot can record, and what the simulator adds.
DRIVING_TOPICS = (LEFT_IMAGE, RIGHT_IMAGE, LEFT_INFO, RIGHT_INFO, ODOM, CMD_VEL)
SIM_TOPICS = DRIVING_TOPICS + (EXPERT_CMD_VEL, GT_LABELS, GT_DEPTH, COLLISIONS)
# What `dave record` records by default: the driving topics plus who drove and what the stack saw.
RECORD_TOPICS = DRIVING_TOPICS + (TELEOP_CMD_VEL, STEERING_COMMAND, MODE, ESTOP, INTERVENTION, TRAV_LABELS)

# Image encodings of the format -> (dtype, channels).
_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    'rgb8': (np.dtype(np.uint8), 3),
    'mono8': (np.dtype(np.uint8), 1),
    '32FC1': (np.dtype(np.float32), 1),
}


class RecordingError(ValueError):
    """A recording, topic or frame that does not fit the format; the message names the culprit."""


@lru_cache(maxsize=1)
def typestore() -> Any:
    """The rosbags typestore holding the message definitions of this format."""
    return get_typestore(TYPESTORE)


def _types() -> Any:
    return typestore().types


# ---------------------------------------------------------------- numpy -> messages

def stamp_from_ns(ns: int) -> Any:
    """builtin_interfaces/Time of `ns` nanoseconds since the epoch."""
    ns = int(ns)
    if ns < 0:
        raise RecordingError(f'stamp must be >= 0 ns, got {ns}')
    return _types()['builtin_interfaces/msg/Time'](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def stamp_to_ns(stamp: Any) -> int:
    """Nanoseconds since the epoch of a builtin_interfaces/Time."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _header(stamp_ns: int, frame_id: str) -> Any:
    return _types()['std_msgs/msg/Header'](stamp=stamp_from_ns(stamp_ns), frame_id=frame_id)


def image_msg(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Any:
    """sensor_msgs/Image of an HxWx3 uint8 (rgb8), HxW uint8 (mono8) or HxW float32 (32FC1) array."""
    if encoding not in _ENCODINGS:
        raise RecordingError(f'image encoding {encoding!r} is not in the format (known: {", ".join(_ENCODINGS)})')
    dtype, channels = _ENCODINGS[encoding]
    shape_ok = array.ndim == 3 and array.shape[2] == 3 if channels == 3 else array.ndim == 2
    if not shape_ok or (array.dtype.kind, array.dtype.itemsize) != (dtype.kind, dtype.itemsize):
        wanted = 'HxWx3' if channels == 3 else 'HxW'
        raise RecordingError(f'{encoding} image needs a {wanted} {dtype} array, got shape {array.shape} {array.dtype}')
    # Little-endian on the wire whatever this machine is (is_bigendian = 0).
    packed = np.ascontiguousarray(array, dtype=dtype.newbyteorder('<'))
    height, width = packed.shape[:2]
    return _types()['sensor_msgs/msg/Image'](
        header=_header(stamp_ns, frame_id), height=height, width=width, encoding=encoding,
        is_bigendian=0, step=width * channels * dtype.itemsize, data=packed.reshape(-1).view(np.uint8))


def image_to_numpy(msg: Any) -> np.ndarray:
    """HxWx3 / HxW array view of a format Image (rows beyond width*channels are dropped)."""
    if msg.encoding not in _ENCODINGS:
        raise RecordingError(f'image encoding {msg.encoding!r} is not in the format (known: {", ".join(_ENCODINGS)})')
    dtype, channels = _ENCODINGS[msg.encoding]
    dtype = dtype.newbyteorder('>' if msg.is_bigendian else '<')
    row_bytes = msg.width * channels * dtype.itemsize
    data = np.asarray(msg.data, dtype=np.uint8)
    if msg.step < row_bytes or data.size < msg.height * msg.step:
        raise RecordingError(f'{msg.encoding} image {msg.width}x{msg.height}: step {msg.step} and '
                             f'{data.size} data bytes do not hold width * {channels * dtype.itemsize} bytes per row')
    rows = data[:msg.height * msg.step].reshape(msg.height, msg.step)[:, :row_bytes]
    pixels = np.ascontiguousarray(rows).view(dtype)
    return pixels.reshape(msg.height, msg.width, 3) if channels == 3 else pixels.reshape(msg.height, msg.width)


def camera_info_msg(width: int, height: int, fx: float, fy: float, cx: float, cy: float, stamp_ns: int,
                    frame_id: str, baseline_m: float = 0.0) -> Any:
    """CameraInfo of an ideal rectified pinhole; `baseline_m` only for the right camera (P[3] = -fx*b)."""
    for name, value in (('fx', fx), ('fy', fy)):
        if not (math.isfinite(value) and value > 0):
            raise RecordingError(f'camera_info {name} must be > 0 pixels, got {value!r}')
    if not (math.isfinite(baseline_m) and baseline_m >= 0):
        raise RecordingError(f'camera_info baseline_m must be >= 0, got {baseline_m!r}')
    tx = -fx * baseline_m if baseline_m else 0.0
    roi = _types()['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return _types()['sensor_msgs/msg/CameraInfo'](
        header=_header(stamp_ns, frame_id), height=int(height), width=int(width), distortion_model='plumb_bob',
        d=np.zeros(5), k=np.array([fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]),
        r=np.eye(3).reshape(-1), p=np.array([fx, 0.0, cx, tx, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]),
        binning_x=0, binning_y=0, roi=roi)


def odometry_msg(stamp_ns: int, x: float, y: float, yaw: float, v: float, v_lateral: float, w: float) -> Any:
    """nav_msgs/Odometry odom -> base_link of a planar pose and body-frame twist (covariances zero)."""
    t = _types()
    pose = t['geometry_msgs/msg/Pose'](
        position=t['geometry_msgs/msg/Point'](x=float(x), y=float(y), z=0.0),
        orientation=t['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2)))
    twist = _twist(v, w, v_lateral)
    return t['nav_msgs/msg/Odometry'](
        header=_header(stamp_ns, ODOM_FRAME), child_frame_id=BASE_FRAME,
        pose=t['geometry_msgs/msg/PoseWithCovariance'](pose=pose, covariance=np.zeros(36)),
        twist=t['geometry_msgs/msg/TwistWithCovariance'](twist=twist, covariance=np.zeros(36)))


def _twist(v: float, w: float, v_lateral: float = 0.0) -> Any:
    vector = _types()['geometry_msgs/msg/Vector3']
    return _types()['geometry_msgs/msg/Twist'](linear=vector(x=float(v), y=float(v_lateral), z=0.0),
                                               angular=vector(x=0.0, y=0.0, z=float(w)))


def twist_msg(v: float, w: float) -> Any:
    """geometry_msgs/Twist of a planar command [m/s, rad/s]."""
    return _twist(v, w)


def twist_stamped_msg(v: float, w: float, stamp_ns: int, frame_id: str = BASE_FRAME) -> Any:
    """geometry_msgs/TwistStamped of a planar command, stamped (labels carry their image's stamp)."""
    return _types()['geometry_msgs/msg/TwistStamped'](header=_header(stamp_ns, frame_id), twist=_twist(v, w))


def uint32_msg(value: int) -> Any:
    if not 0 <= int(value) < 2 ** 32:
        raise RecordingError(f'UInt32 value out of range: {value!r}')
    return _types()['std_msgs/msg/UInt32'](data=int(value))


def string_msg(text: str) -> Any:
    """std_msgs/String (e.g. /dave/mode)."""
    return _types()['std_msgs/msg/String'](data=str(text))


def bool_msg(value: bool) -> Any:
    """std_msgs/Bool (e.g. /dave/estop, /dave/intervention)."""
    return _types()['std_msgs/msg/Bool'](data=bool(value))


# ---------------------------------------------------------------- writing

def partial_path(path: Path) -> Path:
    """Where a recording destined for `path` is written until complete (a hidden sibling)."""
    return path.parent / f'.{path.name}{_PARTIAL}{os.getpid()}-{uuid.uuid4().hex[:8]}' / path.name


def remove_partial_recordings(directory: str | os.PathLike) -> list[Path]:
    """Delete what interrupted writers left in `directory`; returns the removed paths.

    Only for a directory no live writer uses (the collector holds a lock on its output).
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = [p for p in directory.iterdir() if p.name.startswith('.') and _PARTIAL in p.name and p.is_dir()]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


class RecordingWriter:
    """Writes one recording; it appears at `path` only after `close` (use as a context manager).

    `topics` are names from TOPICS. `write` takes rosbags messages (built with the functions
    above); `write_cdr` takes already serialized CDR bytes, as a live recorder receives them.
    Leaving the `with` block through an exception discards the recording.
    """

    def __init__(self, path: str | os.PathLike, topics: Iterable[str] = SIM_TOPICS, compress: bool = True,
                 custom_data: Mapping[str, str] | None = None) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise RecordingError(f'recording {self.path} exists already; not overwriting it')
        unknown = [t for t in topics if t not in TOPICS]
        if unknown:
            raise RecordingError(f'topic {unknown[0]!r} is not in the recording format (known: {", ".join(TOPICS)})')
        self._partial = partial_path(self.path)
        self._partial.parent.mkdir(parents=True)
        self._writer = Writer(self._partial, version=ROSBAG2_VERSION, storage_plugin=StoragePlugin.MCAP)
        if compress:  # zstd MCAP chunks: a 320x240 sim frame with GT shrinks ~4x for ~1.5 ms of CPU
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self._writer.set_custom_data(FORMAT_KEY, FORMAT_NAME)
        self._writer.set_custom_data(VERSION_KEY, str(FORMAT_VERSION))
        for key, value in (custom_data or {}).items():
            self.set_custom_data(key, value)
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        try:
            self._writer.open()
            for name in topics:
                spec = TOPICS[name]
                self._connections[name] = self._writer.add_connection(
                    name, spec.msgtype, typestore=typestore(), offered_qos_profiles=[spec.qos])
                self.counts[name] = 0
        except BaseException:
            self.abort()
            raise

    def set_custom_data(self, key: str, value: str) -> None:
        """A string entry of metadata.yaml custom_data (written on close)."""
        if key in (FORMAT_KEY, VERSION_KEY):
            raise RecordingError(f'custom_data key {key!r} is reserved for the format')
        if not isinstance(value, str):
            raise RecordingError(f'custom_data {key!r} must be a string, got {type(value).__name__}')
        self._writer.set_custom_data(key, value)

    def write(self, topic: str, msg: Any, log_time_ns: int) -> None:
        """Serialize `msg` (of the topic's type) and append it at bag time `log_time_ns`."""
        spec = TOPICS.get(topic)
        if spec is None or topic not in self._connections:
            raise RecordingError(f'topic {topic!r} was not opened in recording {self.path}')
        self.write_cdr(topic, typestore().serialize_cdr(msg, spec.msgtype), log_time_ns)

    def write_cdr(self, topic: str, data: bytes | memoryview, log_time_ns: int) -> None:
        """Append an already serialized CDR message."""
        connection = self._connections.get(topic)
        if connection is None:
            raise RecordingError(f'topic {topic!r} was not opened in recording {self.path}')
        self._writer.write(connection, int(log_time_ns), data)
        self.counts[topic] += 1

    def close(self) -> Path:
        """Finish the files and move the recording to its final path (atomic rename)."""
        try:
            self._writer.close()
            for file in self._partial.iterdir():
                fsync_file(file)
            os.rename(self._partial, self.path)
        except BaseException:
            self.abort()
            raise
        shutil.rmtree(self._partial.parent, ignore_errors=True)
        return self.path

    def abort(self) -> None:
        """Discard the recording; nothing appears at `path`."""
        try:
            self._writer.abort()
        finally:
            shutil.rmtree(self._partial.parent, ignore_errors=True)

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# ---------------------------------------------------------------- reading

@dataclass(frozen=True)
class RecordingInfo:
    """What metadata.yaml says about a recording."""

    path: Path
    format_version: int | None  # None: not written by dave (e.g. plain `ros2 bag record`)
    message_counts: dict[str, int]
    start_ns: int
    duration_ns: int
    custom_data: dict[str, str]
    files: tuple[str, ...] = ()  # storage files, relative to `path`


def read_info(path: str | os.PathLike) -> RecordingInfo:
    """Parse `path`/metadata.yaml; a missing or foreign file is a RecordingError naming it."""
    path = Path(path)
    metadata = path / 'metadata.yaml'
    try:
        document = yaml.safe_load(metadata.read_text())
        info = document['rosbag2_bagfile_information']
        counts = {t['topic_metadata']['name']: int(t['message_count']) for t in info['topics_with_message_count']}
        start_ns = int(info['starting_time']['nanoseconds_since_epoch'])
        duration_ns = int(info['duration']['nanoseconds'])
        files = tuple(str(f) for f in info.get('relative_file_paths') or ())
    except OSError as exc:
        raise RecordingError(f'recording {path}: cannot read metadata.yaml ({exc.strerror})') from None
    except yaml.YAMLError as exc:
        # PyYAML's text spans several lines (context, snippet, caret): keep its place and problem.
        mark = getattr(exc, 'problem_mark', None)
        where = f' at line {mark.line + 1}' if mark is not None else ''
        problem = getattr(exc, 'problem', None) or type(exc).__name__
        raise RecordingError(f'recording {metadata}: not valid YAML{where} ({problem})') from None
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordingError(f'recording {metadata}: not rosbag2 metadata ({type(exc).__name__}: {exc})') from None
    custom = {str(k): str(v) for k, v in (info.get('custom_data') or {}).items()}
    version = None
    if custom.get(FORMAT_KEY) == FORMAT_NAME:
        try:
            version = int(custom.get(VERSION_KEY, ''))
        except ValueError:
            raise RecordingError(f'recording {metadata}: custom_data {VERSION_KEY!r} is not an integer') from None
        if version > FORMAT_VERSION:
            raise RecordingError(f'recording {path} has format version {version}, newer than this dave '
                                 f'reads ({FORMAT_VERSION}); update dave')
    return RecordingInfo(path, version, counts, start_ns, duration_ns, custom, files)


def storage_problem(info: RecordingInfo) -> str | None:
    """Why a recording's storage files cannot be whole, judged without reading them, or None.

    metadata.yaml is written last, so its counts describe the files as they were closed; a file
    cut short afterwards (a full disk, a copy stopped half way) keeps those counts. An MCAP file
    ends with the same magic bytes it starts with, so a missing end shows the cut.
    """
    for name in info.files:
        file = info.path / name
        try:
            size = file.stat().st_size
            with file.open('rb') as stream:
                head = stream.read(len(MCAP_MAGIC))
                stream.seek(max(size - len(MCAP_MAGIC), 0))
                tail = stream.read(len(MCAP_MAGIC))
        except FileNotFoundError:
            return f'storage file {name} is missing'
        except OSError as exc:
            return f'storage file {name} cannot be read ({exc.strerror})'
        if size == 0:
            return f'storage file {name} is empty'
        if head == MCAP_MAGIC and (size < 2 * len(MCAP_MAGIC) or tail != MCAP_MAGIC):
            return f'storage file {name} is cut short (no MCAP end magic)'
    return None


def read_messages(path: str | os.PathLike, topics: Iterable[str] | None = None) -> Iterator[tuple[str, int, Any]]:
    """(topic, bag time ns, deserialized message) in bag-time order, optionally only `topics`."""
    read_info(path)  # a clear error for foreign or too-new recordings before rosbags gets to them
    store = typestore()
    wanted = None if topics is None else set(topics)
    with Reader(Path(path)) as reader:
        connections = [c for c in reader.connections if wanted is None or c.topic in wanted]
        for connection, timestamp, data in reader.messages(connections=connections):
            yield connection.topic, timestamp, store.deserialize_cdr(data, connection.msgtype)
