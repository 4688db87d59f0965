"""Side-by-side stereo frames from a USB stereo camera or a video file: the hardware boundary.

Common USB stereo cameras (ELP, Arducam, ZED in UVC mode...) deliver one 2W x H frame holding the
left eye in its left half and the right eye in its right half, both exposed together. A video
file of that layout stands in for the camera in tests and replays.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


class CaptureError(RuntimeError):
    """The stereo source cannot be opened or stopped delivering usable frames; names the source."""


@dataclass(frozen=True)
class CaptureConfig:
    """What to open and what each eye's image must look like."""

    source: str = '/dev/video0'  # camera device, camera index ('0'), or a video file path
    eye_width: int = 640
    eye_height: int = 480
    fps: float = 30.0          # requested from a camera; a file's pace is the caller's business
    fourcc: str = 'MJPG'       # camera pixel format; USB 2 cannot carry 2x640x480 raw YUYV at 30 Hz

    def __post_init__(self) -> None:
        if not self.source:
            raise ValueError('source must name a camera index, a /dev/video device or a video file')
        for name in ('eye_width', 'eye_height'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f'{name} must be a positive int, got {value!r}')
        if not (math.isfinite(self.fps) and self.fps > 0.0):
            raise ValueError(f'fps must be > 0, got {self.fps!r}')
        if len(self.fourcc) not in (0, 4):
            raise ValueError(f"fourcc must be 4 characters (e.g. 'MJPG') or '' for the driver's "
                             f'default, got {self.fourcc!r}')


def split_side_by_side(frame_bgr: np.ndarray, eye_width: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut a H x 2W BGR frame into contiguous RGB left and right images (H x W x 3 each)."""
    if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.shape[1] != 2 * eye_width:
        raise CaptureError(f'side-by-side frame of shape {frame_bgr.shape} does not hold two '
                           f'{eye_width}-pixel-wide BGR eyes')
    # cvtColor reads the strided halves and writes fresh contiguous RGB images: the only copy.
    left = cv2.cvtColor(frame_bgr[:, :eye_width], cv2.COLOR_BGR2RGB)
    right = cv2.cvtColor(frame_bgr[:, eye_width:], cv2.COLOR_BGR2RGB)
    return left, right


def _is_device(source: str) -> bool:
    return source.isdigit() or source.startswith('/dev/')


class SideBySideCapture:
    """One opened stereo source; `grab()` then `retrieve()` so the caller can stamp between them."""

    def __init__(self, config: CaptureConfig) -> None:
        self.config = config
        self.is_file = not _is_device(config.source)
        if self.is_file and not Path(config.source).is_file():
            raise CaptureError(f'stereo source {config.source!r}: no such video file '
                               '(or give a camera index / /dev/videoN)')
        self._capture = self._open()

    def _open(self) -> cv2.VideoCapture:
        config = self.config
        target: int | str = int(config.source) if config.source.isdigit() else config.source
        # OpenCV logs its own warnings for a failed open; CaptureError already says it in one line.
        previous = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            capture = cv2.VideoCapture(target)
        finally:
            cv2.utils.logging.setLogLevel(previous)
        if not capture.isOpened():
            capture.release()
            kind = 'video file' if self.is_file else 'camera'
            raise CaptureError(f'cannot open stereo source {config.source!r} ({kind})')
        if not self.is_file:
            if config.fourcc:
                capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*config.fourcc))
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, 2 * config.eye_width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, config.eye_height)
            capture.set(cv2.CAP_PROP_FPS, config.fps)
            # A one-frame driver queue: the newest image, not one queued seconds ago, drives.
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return capture

    def grab(self) -> bool:
        """Wait for the next frame (a camera blocks until exposure ends); False at a file's end."""
        if self._capture.grab():
            return True
        if self.is_file:
            return False
        raise CaptureError(f'stereo source {self.config.source!r} stopped delivering frames')

    def retrieve(self) -> tuple[np.ndarray, np.ndarray]:
        """Decode the grabbed frame into RGB (left, right), each eye_height x eye_width x 3."""
        ok, frame = self._capture.retrieve()
        if not ok or frame is None:
            raise CaptureError(
                f'stereo source {self.config.source!r}: grabbed frame cannot be decoded')
        expected = (self.config.eye_height, 2 * self.config.eye_width)
        if frame.shape[:2] != expected:
            raise CaptureError(
                f'stereo source {self.config.source!r} gives '
                f'{frame.shape[1]}x{frame.shape[0]} frames; '
                f'width/height parameters expect side-by-side {expected[1]}x{expected[0]}')
        if frame.ndim == 2:  # some backends hand monochrome sensors through as one channel
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        return split_side_by_side(frame, self.config.eye_width)

    def rewind(self) -> None:
        """Start a video file over (for looping playback)."""
        if not self.is_file:
            raise CaptureError(
                f'stereo source {self.config.source!r} is a camera; it cannot rewind')
        self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)

    def close(self) -> None:
        self._capture.release()

    def __enter__(self) -> SideBySideCapture:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
