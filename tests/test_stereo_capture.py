"""Side-by-side stereo capture from a video file (the camera's stand-in), frame split (no ROS)."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from dave_core.stereo_capture import (CaptureConfig, CaptureError, SideBySideCapture,
                                      split_side_by_side)

EYE_W, EYE_H = 96, 64


def write_side_by_side_video(path: Path, frames: int, eye_width: int = EYE_W,
                             eye_height: int = EYE_H) -> Path:
    """MJPG video: left eye reddish, right eye bluish, green = 10 * frame index (mod 250)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 30.0,
                             (2 * eye_width, eye_height))
    assert writer.isOpened(), 'OpenCV cannot write MJPG/avi here'
    try:
        for i in range(frames):
            frame = np.empty((eye_height, 2 * eye_width, 3), np.uint8)  # BGR
            green = 10 * i % 250
            frame[:, :eye_width] = (40, green, 220)
            frame[:, eye_width:] = (220, green, 40)
            writer.write(frame)
    finally:
        writer.release()
    return path


def test_split_gives_contiguous_rgb_eyes():
    frame = np.zeros((4, 10, 3), np.uint8)
    frame[:, :5] = (1, 2, 3)    # BGR left
    frame[:, 5:] = (7, 8, 9)    # BGR right
    left, right = split_side_by_side(frame, 5)
    assert left.shape == right.shape == (4, 5, 3)
    assert left.flags.c_contiguous and right.flags.c_contiguous
    assert tuple(left[0, 0]) == (3, 2, 1) and tuple(right[3, 4]) == (9, 8, 7)
    assert not np.shares_memory(left, frame)


@pytest.mark.parametrize('shape', [(4, 9, 3), (4, 10), (4, 10, 4)])
def test_split_rejects_frames_that_are_not_two_bgr_eyes(shape):
    with pytest.raises(CaptureError, match=r'does not hold two 5-pixel-wide BGR eyes'):
        split_side_by_side(np.zeros(shape, np.uint8), 5)


def test_video_file_frames_are_split_in_order_then_end_and_rewind(tmp_path):
    video = write_side_by_side_video(tmp_path / 'sbs.avi', frames=6)
    with SideBySideCapture(CaptureConfig(source=str(video), eye_width=EYE_W,
                                         eye_height=EYE_H)) as capture:
        assert capture.is_file
        greens = []
        while capture.grab():
            left, right = capture.retrieve()
            assert left.shape == right.shape == (EYE_H, EYE_W, 3)
            # RGB order: the left eye is red-dominant, the right blue-dominant (MJPG is lossy).
            assert left[..., 0].mean() > 200 and left[..., 2].mean() < 60
            assert right[..., 2].mean() > 200 and right[..., 0].mean() < 60
            assert abs(left[..., 1].mean() - right[..., 1].mean()) < 4
            greens.append(left[..., 1].mean())
        assert len(greens) == 6
        assert np.allclose(greens, [10 * i for i in range(6)], atol=4)
        capture.rewind()
        assert capture.grab()
        assert capture.retrieve()[0][..., 1].mean() < 4


def test_missing_file_names_the_source(tmp_path):
    missing = tmp_path / 'nope.avi'
    with pytest.raises(CaptureError, match=f"stereo source '{missing}': no such video file"):
        SideBySideCapture(CaptureConfig(source=str(missing)))


def test_unreadable_file_and_absent_camera_fail_with_one_clear_error(tmp_path, capfd):
    junk = tmp_path / 'junk.avi'
    junk.write_text('not a video\n')
    with pytest.raises(CaptureError, match=f"cannot open stereo source '{junk}' \\(video file\\)"):
        SideBySideCapture(CaptureConfig(source=str(junk)))
    with pytest.raises(CaptureError,
                       match=r"cannot open stereo source '/dev/video_dave_absent' \(camera\)"):
        SideBySideCapture(CaptureConfig(source='/dev/video_dave_absent'))
    out, err = capfd.readouterr()
    assert out == '' and err == '', 'OpenCV warnings must not repeat the error'


def test_frame_size_not_matching_width_height_is_named(tmp_path):
    video = write_side_by_side_video(tmp_path / 'sbs.avi', frames=2)
    with SideBySideCapture(CaptureConfig(source=str(video), eye_width=EYE_W * 2,
                                         eye_height=EYE_H)) as capture:
        assert capture.grab()
        with pytest.raises(CaptureError,
                           match=f'gives {2 * EYE_W}x{EYE_H} frames; width/height parameters '
                                 f'expect side-by-side {4 * EYE_W}x{EYE_H}'):
            capture.retrieve()


@pytest.mark.parametrize('kwargs, culprit', [
    ({'source': ''}, 'source'),
    ({'eye_width': 0}, 'eye_width'),
    ({'eye_height': 2.0}, 'eye_height'),
    ({'fps': 0.0}, 'fps'),
    ({'fps': float('nan')}, 'fps'),
    ({'fourcc': 'MJPEG'}, 'fourcc'),
])
def test_bad_capture_config_names_the_culprit(kwargs, culprit):
    with pytest.raises(ValueError, match=f'^{culprit} must'):
        CaptureConfig(**kwargs)
