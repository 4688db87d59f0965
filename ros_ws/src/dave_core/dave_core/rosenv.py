"""The ROS 2 environment dave runs in, decided in one place.

Every process the project starts (tests, demo, `dave launch` children, CI) gets its
environment from `ros_env`, so DDS discovery stays on this host and large images travel
through a shared-memory segment big enough for them.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

DISCOVERY_RANGE_VAR = 'ROS_AUTOMATIC_DISCOVERY_RANGE'
PROFILE_VAR = 'FASTDDS_DEFAULT_PROFILES_FILE'


def fastdds_profile_path() -> Path:
    """Path of the shipped Fast DDS XML profile (SHM 16 MiB + UDPv4 on 127.0.0.1)."""
    return Path(str(resources.files('dave_core') / 'config' / 'fastdds_localhost.xml'))


def ros_env(base: Mapping[str, str] | None = None, *, domain_id: int | None = None,
            force_localhost: bool = False) -> dict[str, str]:
    """Return a copy of `base` (default: os.environ) with dave's ROS settings applied.

    A user's own discovery range and profile are kept unless `force_localhost` is set:
    on a robot, people legitimately widen discovery to see the vehicle from a laptop.
    Tests and the demo force localhost because nothing of theirs may leave this host.
    """
    env = dict(os.environ if base is None else base)
    if force_localhost:
        env[DISCOVERY_RANGE_VAR] = 'LOCALHOST'
        env[PROFILE_VAR] = str(fastdds_profile_path())
    else:
        env.setdefault(DISCOVERY_RANGE_VAR, 'LOCALHOST')
        env.setdefault(PROFILE_VAR, str(fastdds_profile_path()))
    # Kilted ignores ROS_LOCALHOST_ONLY; drop it so nobody believes it does something.
    env.pop('ROS_LOCALHOST_ONLY', None)
    env.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    if domain_id is not None:
        if not 0 <= domain_id <= 101:
            raise ValueError(f'ROS_DOMAIN_ID {domain_id} is outside 0..101')
        env['ROS_DOMAIN_ID'] = str(domain_id)
    return env


def apply_ros_env(*, domain_id: int | None = None, force_localhost: bool = False) -> None:
    """Apply `ros_env` to this process; for entry points only, before rclpy starts."""
    env = ros_env(domain_id=domain_id, force_localhost=force_localhost)
    os.environ.pop('ROS_LOCALHOST_ONLY', None)
    os.environ.update(env)
