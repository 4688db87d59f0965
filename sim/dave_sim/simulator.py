"""The MuJoCo simulator: a world, the truck in it, and its stereo camera.

Interface (openpilot-bridge style, backend hidden behind it): `reset`, `apply_controls(v, w)`,
`step(dt)`, `render(with_gt)`, plus the truck `state`, sim `time_s`, `collisions` and
`distance_m`. Time starts at 0 and advances only in `step`, in whole physics steps, so runs are
reproducible: the same world and command sequence give the same states and images.

Each physics step advances the drive model (vehicle.step_drive: lag + limits) towards the last
command and hands its velocities to the body-frame velocity actuators; MuJoCo integrates the
pose and resolves contacts, so obstacles stop the truck. Rendering needs a GL backend chosen by
the caller (MUJOCO_GL=egl headless) and is set up on the first `render` call only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from dave_sim.camera import StereoCameraConfig
from dave_sim.collisions import CollisionEpisodes
from dave_sim.mjcf import CHASSIS_GEOM, LEFT_CAMERA, RIGHT_CAMERA, START_KEY, world_to_mjcf
from dave_sim.render import StereoRenderer
from dave_sim.ride import TerrainRide
from dave_sim.terrain import RidePose
from dave_sim.vehicle import VehicleConfig, VehicleState, sanitize_command, step_drive, wrap_angle
from dave_sim.world import World


@dataclass(frozen=True)
class StereoFrame:
    """One stereo capture at sim time `stamp_s`; labels/depth (left camera) only when asked for."""

    stamp_s: float
    left: np.ndarray  # HxWx3 uint8 RGB
    right: np.ndarray  # HxWx3 uint8 RGB
    labels: np.ndarray | None = None  # HxW uint8 labels.TerrainClass
    depth: np.ndarray | None = None  # HxW float32 metres along the optical axis, +inf for sky


class Simulator:
    """MuJoCo backend of a generated world; see the module docstring for the time model."""

    def __init__(self, world: World, camera: StereoCameraConfig = StereoCameraConfig(),
                 vehicle: VehicleConfig = VehicleConfig(), physics_dt: float = 0.005) -> None:
        self.world = world
        self.camera = camera
        self.vehicle = vehicle
        self.physics_dt = physics_dt
        self.mjcf = world_to_mjcf(world, vehicle, camera, physics_dt)
        self.model = mujoco.MjModel.from_xml_string(self.mjcf)
        self.data = mujoco.MjData(self.model)
        self._start_key = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_KEY, START_KEY)
        self._chassis = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, CHASSIS_GEOM)
        self._ride = TerrainRide(self.model, world, vehicle)
        self._renderer: StereoRenderer | None = None
        self._episodes = CollisionEpisodes()
        self.reset()

    def reset(self) -> None:
        """Truck back at the start pose, at rest; time, distance and collisions back to zero."""
        mujoco.mj_resetDataKeyframe(self.model, self.data, self._start_key)
        self._ride.update(self.data)
        mujoco.mj_forward(self.model, self.data)
        self._command = np.zeros(2)
        self._drive = np.zeros(2)
        self._steps = 0
        self._target_s = 0.0  # time asked for so far; time_s trails it by less than one step
        self._distance_m = 0.0
        self._episodes.reset()

    def apply_controls(self, v: float, w: float) -> bool:
        """Set the command [m/s, rad/s] followed from now on; False (and stop) if non-finite."""
        v, w, ok = sanitize_command(v, w)
        self._command = np.array([v, w])
        return ok

    def step(self, dt: float) -> None:
        """Advance by `dt` seconds in whole physics steps; a remainder carries to the next call."""
        if not (math.isfinite(dt) and dt >= 0.0):
            raise ValueError(f'step dt must be a finite number >= 0, got {dt!r}')
        self.step_to(self._target_s + dt)

    def step_to(self, time_s: float) -> None:
        """Advance to the last physics step at or before sim time `time_s` (never backwards)."""
        if not math.isfinite(time_s):
            raise ValueError(f'step_to time_s must be finite, got {time_s!r}')
        self._target_s = max(self._target_s, time_s)
        # The small epsilon absorbs float error, so step(0.1) is exactly 20 steps of 5 ms.
        n = int((self._target_s - self.time_s) / self.physics_dt + 1e-6)
        for _ in range(n):
            self._physics_step()

    def _physics_step(self) -> None:
        self._drive = step_drive(self._drive, self._command, self.physics_dt, self.vehicle)
        ctrl = self.data.ctrl
        ctrl[0], ctrl[1], ctrl[2] = self._drive[0], 0.0, self._drive[1]
        x0, y0 = self.data.qpos[0], self.data.qpos[1]
        self._ride.update(self.data)  # on the ground before the step's kinematics and contacts
        mujoco.mj_step(self.model, self.data)
        self._steps += 1
        self._distance_m += math.hypot(self.data.qpos[0] - x0, self.data.qpos[1] - y0)
        self._episodes.update(self.time_s, self._touching_obstacle())

    def _touching_obstacle(self) -> bool:
        # Only the chassis collides, and only with obstacles (see mjcf), so any contact counts.
        ncon = self.data.ncon
        return ncon > 0 and bool(np.any(self.data.contact.geom[:ncon] == self._chassis))

    def render(self, with_gt: bool = False) -> StereoFrame:
        """Stereo pair at the current sim time; with_gt adds left-camera labels and depth."""
        if self._renderer is None:
            self._renderer = StereoRenderer(self.model, self.camera.width, self.camera.height)
        left = self._renderer.rgb(self.data, LEFT_CAMERA)
        right = self._renderer.rgb(self.data, RIGHT_CAMERA)
        labels = depth = None
        if with_gt:
            labels, depth = self._renderer.labels_and_depth(self.data, LEFT_CAMERA)
        return StereoFrame(self.time_s, left, right, labels, depth)

    @property
    def state(self) -> VehicleState:
        """Measured pose and body-frame velocities (what odometry would report)."""
        qpos, qvel = self.data.qpos, self.data.qvel
        yaw = float(qpos[2])
        v = float(qvel[0]) * math.cos(yaw) + float(qvel[1]) * math.sin(yaw)
        return VehicleState(float(qpos[0]), float(qpos[1]), wrap_angle(yaw), v, float(qvel[2]))

    @property
    def ride(self) -> RidePose:
        """Height [m] of the truck's ground point and its pitch and roll [rad] on the terrain."""
        return self._ride.pose

    @property
    def lateral_speed_mps(self) -> float:
        """Sideways body-frame speed (skid), for odometry twist."""
        yaw = float(self.data.qpos[2])
        return -float(self.data.qvel[0]) * math.sin(yaw) + float(self.data.qvel[1]) * math.cos(yaw)

    @property
    def command(self) -> tuple[float, float]:
        """The command being followed (after the non-finite check)."""
        return float(self._command[0]), float(self._command[1])

    @property
    def time_s(self) -> float:
        return self._steps * self.physics_dt

    @property
    def collisions(self) -> int:
        """Contact episodes between the truck and obstacles since reset."""
        return self._episodes.count

    @property
    def in_collision(self) -> bool:
        return self._episodes.in_episode

    @property
    def distance_m(self) -> float:
        """Path length driven since reset."""
        return self._distance_m

    def close(self) -> None:
        """Release the renderer's GL resources (physics stays usable)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
