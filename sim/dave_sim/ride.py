"""Keeps the simulated truck on the terrain: its ride body follows the ground under its wheels.

The truck's dynamics are planar (mjcf: slide x, slide y, hinge yaw). Before every physics step
the ride body (chassis, wheels, cameras; see mjcf.RIDE_BODY) is set to the height, pitch and
roll of terrain.ride_pose at the current planar pose. This is kinematic on purpose: gentle
terrain (a few tenths of a metre over metres) changes what the cameras see and where the chassis
meets obstacles, but needs no suspension, wheel contacts or tuning, and it keeps runs exactly
reproducible and as fast as on flat ground.
"""
from __future__ import annotations

import mujoco

from dave_sim.mjcf import RIDE_BODY
from dave_sim.rotations import quat_from_rpy
from dave_sim.scene import ground_grid, wheel_layout
from dave_sim.terrain import RidePose, ride_pose
from dave_sim.vehicle import VehicleConfig
from dave_sim.world import World


class TerrainRide:
    """Sets the ride body's pose in `model` from the planar pose in `data` (qpos = [x, y, yaw])."""

    def __init__(self, model: mujoco.MjModel, world: World, vehicle: VehicleConfig) -> None:
        self._model = model
        self._body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, RIDE_BODY)
        if self._body < 0:
            raise ValueError(f'body {RIDE_BODY!r} is not in the model')
        self._flat = world.terrain.is_flat
        self._height_at = ground_grid(world).height_at
        wheels = wheel_layout(vehicle)
        self._wheelbase, self._track = wheels.wheelbase_m, wheels.track_m
        self.pose = RidePose(float(model.body_pos[self._body, 2]), 0.0, 0.0)

    def update(self, data: mujoco.MjData) -> RidePose:
        """Put the ride body on the ground at the current planar pose; returns that pose."""
        if self._flat:  # the MJCF already holds the one pose flat ground allows
            return self.pose
        x, y, yaw = float(data.qpos[0]), float(data.qpos[1]), float(data.qpos[2])
        self.pose = pose = ride_pose(self._height_at, x, y, yaw, self._wheelbase, self._track)
        self._model.body_pos[self._body, 2] = pose.z
        self._model.body_quat[self._body] = quat_from_rpy(pose.roll, pose.pitch, 0.0)
        return pose
