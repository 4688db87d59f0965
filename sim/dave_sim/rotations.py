"""Rotations as plain tuples: roll-pitch-yaw (the SDF / ROS convention) and unit quaternions.

rpy = (roll, pitch, yaw) means R = Rz(yaw) @ Ry(pitch) @ Rx(roll): rotations about the fixed
x, then y, then z axes, as in SDF `<pose>` and REP-103. Quaternions are (w, x, y, z), MuJoCo's
order. Both scene writers go through these helpers, so MJCF and SDF agree on every orientation.
"""
from __future__ import annotations

import math

Quat = tuple[float, float, float, float]
RPY = tuple[float, float, float]


def quat_from_rpy(roll: float, pitch: float, yaw: float) -> Quat:
    """Unit quaternion (w, x, y, z) of R = Rz(yaw) Ry(pitch) Rx(roll)."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return (cr * cp * cy + sr * sp * sy,
            sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy)


def rpy_from_quat(q: Quat) -> RPY:
    """Roll, pitch, yaw of a unit quaternion (inverse of quat_from_rpy for |pitch| < pi/2)."""
    w, x, y, z = q
    roll = math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = math.asin(max(-1.0, min(1.0, 2 * (w * y - z * x))))
    yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return roll, pitch, yaw


def quat_multiply(a: Quat, b: Quat) -> Quat:
    """Hamilton product a * b: rotate by b first, then by a."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return (aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw)


def rotation_matrix(q: Quat) -> tuple[tuple[float, float, float], ...]:
    """3x3 rotation matrix (rows) of a unit quaternion."""
    w, x, y, z = q
    return ((1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)),
            (2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)),
            (2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)))


def rotate(q: Quat, v: tuple[float, float, float]) -> tuple[float, float, float]:
    """The vector v rotated by q."""
    r = rotation_matrix(q)
    return tuple(r[i][0] * v[0] + r[i][1] * v[1] + r[i][2] * v[2] for i in range(3))
