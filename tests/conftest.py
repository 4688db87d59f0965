"""Test-wide environment: DDS stays on this host, one ROS domain per test run, headless GL."""
import os

import pytest

from dave_core.rosenv import apply_ros_env

# One domain per run, derived from the pid so parallel runs on one host do not cross-talk.
_DOMAIN_ID = int(os.environ.get('DAVE_TEST_DOMAIN_ID', 1 + os.getpid() % 100))
apply_ros_env(domain_id=_DOMAIN_ID, force_localhost=True)
os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('LP_NUM_THREADS', '1')


@pytest.fixture
def context():
    """A private rclpy context for one test: nodes in it are shut down however the test ends."""
    import rclpy  # here, so tests without ROS do not load it
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx)
    try:
        yield ctx
    finally:
        ctx.try_shutdown()
