"""World + vehicle + stereo camera -> MJCF (MuJoCo XML) text.

Scene contract the simulator relies on (names below are constants of this module):
- the truck is body VEHICLE_BODY with planar joints (slide x, slide y, hinge yaw, in that
  order, so qpos = [x, y, yaw] in the world frame) and three velocity actuators on its base
  site: forward speed, lateral speed (held at zero: tyre grip) and yaw rate, all in the body
  frame, with force limits so obstacles stop the truck instead of being driven through;
- its child body RIDE_BODY carries the mass, chassis, wheels and cameras; it has no joint, and
  the simulator sets its height, pitch and roll from the terrain every physics step (ride.py),
  so dynamics stay planar while the truck and its cameras follow the ground;
- only the chassis collides, and only with obstacles (contype/conaffinity bits), so contacts
  are exactly vehicle-obstacle contacts and the ground costs no collision work;
- the ground is a heightfield sampled from the world's terrain (a plane when it is flat);
- each geom's `group` is its labels.GeomCategory, from which ground truth classes are made;
- keyframe START_KEY holds the world's start pose.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np

from dave_sim.camera import StereoCameraConfig
from dave_sim.labels import GeomCategory
from dave_sim.rotations import quat_from_rpy
from dave_sim.scene import (Solid, ground_grid, ground_half_extent_m, obstacle_objects, wall_object,
                            wheel_layout)
from dave_sim.terrain import ride_pose
from dave_sim.vehicle import VehicleConfig
from dave_sim.world import World

VEHICLE_BODY = 'vehicle'
RIDE_BODY = 'vehicle_ride'
VEHICLE_SITE = 'vehicle_base'
CHASSIS_GEOM = 'vehicle_chassis'
GROUND_GEOM = 'ground'
TERRAIN_HFIELD = 'terrain'
LEFT_CAMERA = 'left_camera'
RIGHT_CAMERA = 'right_camera'
START_KEY = 'start'
ACTUATORS = ('drive_forward', 'drive_lateral', 'drive_yaw')

# Clip planes in metres. Near: the lens sits ~5 cm behind the bumper, so an obstacle touching
# the truck must still be drawn. Far: set per world from the arena diagonal.
NEAR_CLIP_M = 0.02
# Actuator velocity time constant: much faster than the drive lag, so the body follows the
# commanded velocity closely while the force limits still let obstacles win.
ACTUATOR_TIME_CONSTANT_S = 0.02
# Depth of the heightfield's solid base below its lowest point (MuJoCo needs one > 0).
_HFIELD_BASE_M = 0.1

# Collision bits: obstacles collide with the vehicle only; the ground collides with nothing.
_OBSTACLE_BITS = {'contype': '1', 'conaffinity': '0'}
_VEHICLE_BITS = {'contype': '0', 'conaffinity': '1'}
_NO_COLLISION = {'contype': '0', 'conaffinity': '0'}


def _fmt(*values: float) -> str:
    return ' '.join(f'{v:.9g}' for v in values)


def far_clip_m(world: World) -> float:
    """Far clip plane: beyond the farthest visible ground (the ground spans twice the arena)."""
    return 2.0 * world.config.size_m * math.sqrt(2) + 10.0


def world_to_mjcf(world: World, vehicle: VehicleConfig = VehicleConfig(),
                  camera: StereoCameraConfig = StereoCameraConfig(), physics_dt: float = 0.005) -> str:
    """The complete MJCF document of `world` with the truck at its start pose (keyframe)."""
    if not (math.isfinite(physics_dt) and 0 < physics_dt <= 0.05):
        raise ValueError(f'physics_dt must be in (0, 0.05] s, got {physics_dt!r}')
    root = ET.Element('mujoco', model=f'dave_world_{world.seed}')
    ET.SubElement(root, 'compiler', angle='radian')
    ET.SubElement(root, 'option', timestep=_fmt(physics_dt), integrator='implicitfast')
    _visual(root, world, camera)
    assets = _assets(root, world)
    worldbody = ET.SubElement(root, 'worldbody')
    ET.SubElement(worldbody, 'light', name='sun', type='directional', pos='0 0 30',
                  dir=_fmt(*world.light_dir), diffuse=_fmt(*world.light_rgb), specular='0.1 0.1 0.1',
                  castshadow='false')
    _ground(worldbody, assets, world)
    walls = wall_object(world)
    for solid in (walls.solids if walls else ()):
        _solid_geom(worldbody, solid)
    for obstacle in obstacle_objects(world):
        for solid in obstacle.solids:
            _solid_geom(worldbody, solid)
    _vehicle(worldbody, world, vehicle, camera)
    _actuators(root, vehicle)
    keyframes = ET.SubElement(root, 'keyframe')
    ET.SubElement(keyframes, 'key', name=START_KEY, qpos=_fmt(world.start.x, world.start.y, world.start.yaw))
    ET.indent(root)
    return ET.tostring(root, encoding='unicode')


def _visual(root: ET.Element, world: World, camera: StereoCameraConfig) -> None:
    extent = world.config.size_m
    # MuJoCo scales znear/zfar by the model extent, so fix the extent and divide by it.
    ET.SubElement(root, 'statistic', extent=_fmt(extent), center='0 0 0')
    visual = ET.SubElement(root, 'visual')
    ET.SubElement(visual, 'global', offwidth=str(camera.width), offheight=str(camera.height))
    # No shadows and no multisampling: ~3x faster on the CPU renderer (llvmpipe).
    ET.SubElement(visual, 'quality', shadowsize='0', offsamples='0')
    ET.SubElement(visual, 'map', znear=_fmt(NEAR_CLIP_M / extent), zfar=_fmt(far_clip_m(world) / extent))
    a = world.ambient
    ET.SubElement(visual, 'headlight', ambient=_fmt(a, a, a), diffuse='0.2 0.2 0.2', specular='0 0 0')


def _assets(root: ET.Element, world: World) -> ET.Element:
    assets = ET.SubElement(root, 'asset')
    sky = world.sky_rgb
    horizon = tuple(min(1.0, 0.5 * c + 0.5) for c in sky)
    ET.SubElement(assets, 'texture', name='sky', type='skybox', builtin='gradient', rgb1=_fmt(*sky),
                  rgb2=_fmt(*horizon), width='64', height='64')
    style = world.ground_style
    # A pattern for large-scale structure plus random speckles for fine texture stereo can match.
    ET.SubElement(assets, 'texture', name='ground', type='2d', builtin=style.pattern,
                  rgb1=_fmt(*world.ground_rgb[0]), rgb2=_fmt(*world.ground_rgb[1]), width='512', height='512',
                  mark='random', random=_fmt(style.mark_density), markrgb=_fmt(*world.ground_mark_rgb()))
    # texuniform: texrepeat is per metre, so one texture tile covers tile_m whatever the ground size.
    repeat = 1.0 / style.tile_m
    ET.SubElement(assets, 'material', name='ground', texture='ground', texuniform='true',
                  texrepeat=_fmt(repeat, repeat), reflectance='0')
    return assets


def _ground(worldbody: ET.Element, assets: ET.Element, world: World) -> None:
    half = ground_half_extent_m(world)
    common = {'name': GROUND_GEOM, 'material': 'ground', 'group': str(GeomCategory.GROUND), **_NO_COLLISION}
    if world.terrain.is_flat:
        # A plane's third size is its rendering grid: 0.1 m cells made the CPU renderer ~2x slower.
        ET.SubElement(worldbody, 'geom', type='plane', size=_fmt(half, half, world.config.terrain_resolution_m),
                      pos=_fmt(0, 0, world.terrain.offset), **common)
        return
    grid = ground_grid(world)
    low, high = float(grid.heights.min()), float(grid.heights.max())
    relief = max(high - low, 1e-6)
    # MuJoCo reads the first elevation row as the +y edge: rows go north to south, like an image.
    normalised = np.flipud((grid.heights - low) / relief)
    ET.SubElement(assets, 'hfield', name=TERRAIN_HFIELD, nrow=str(grid.size), ncol=str(grid.size),
                  size=_fmt(half, half, relief, _HFIELD_BASE_M),
                  elevation=' '.join(f'{v:.5f}' for v in normalised.ravel()))
    ET.SubElement(worldbody, 'geom', type='hfield', hfield=TERRAIN_HFIELD, pos=_fmt(0, 0, low), **common)


def _solid_geom(parent: ET.Element, solid: Solid) -> ET.Element:
    size = (solid.size[0], solid.size[2]) if solid.shape == 'cylinder' else solid.size
    return ET.SubElement(parent, 'geom', name=solid.name, type=solid.shape, pos=_fmt(*solid.pos),
                         quat=_fmt(*solid.quat), size=_fmt(*size), rgba=_fmt(*solid.rgba),
                         group=str(GeomCategory.OBSTACLE), **_OBSTACLE_BITS)


def _vehicle(worldbody: ET.Element, world: World, vehicle: VehicleConfig, camera: StereoCameraConfig) -> None:
    body = ET.SubElement(worldbody, 'body', name=VEHICLE_BODY, pos='0 0 0')
    # Slides before the hinge: the slides then move along world axes, so qpos = [x, y, yaw].
    ET.SubElement(body, 'joint', name='vehicle_x', type='slide', axis='1 0 0')
    ET.SubElement(body, 'joint', name='vehicle_y', type='slide', axis='0 1 0')
    ET.SubElement(body, 'joint', name='vehicle_yaw', type='hinge', axis='0 0 1')
    ET.SubElement(body, 'site', name=VEHICLE_SITE, pos='0 0 0')
    wheels = wheel_layout(vehicle)
    # The ride body starts on the ground at the start pose; the simulator keeps it there.
    pose = ride_pose(ground_grid(world).height_at, world.start.x, world.start.y, world.start.yaw,
                     wheels.wheelbase_m, wheels.track_m)
    ride = ET.SubElement(body, 'body', name=RIDE_BODY, pos=_fmt(0, 0, pose.z))
    if pose.pitch or pose.roll:
        ride.set('quat', _fmt(*quat_from_rpy(pose.roll, pose.pitch, 0.0)))
    length, width, height, mass = vehicle.length_m, vehicle.width_m, vehicle.height_m, vehicle.mass_kg
    z_centre = vehicle.ground_clearance_m + height / 2
    inertia = (mass * (width ** 2 + height ** 2) / 12, mass * (length ** 2 + height ** 2) / 12,
               mass * (length ** 2 + width ** 2) / 12)
    ET.SubElement(ride, 'inertial', pos=_fmt(0, 0, z_centre), mass=_fmt(mass), diaginertia=_fmt(*inertia))
    vehicle_group = str(GeomCategory.VEHICLE)
    ET.SubElement(ride, 'geom', name=CHASSIS_GEOM, type='box', pos=_fmt(0, 0, z_centre),
                  size=_fmt(length / 2, width / 2, height / 2), rgba='0.8 0.15 0.1 1',
                  friction='0.5 0.005 0.0001', group=vehicle_group, **_VEHICLE_BITS)
    for name, sx, sy in (('fl', 1, 1), ('fr', 1, -1), ('rl', -1, 1), ('rr', -1, -1)):
        ET.SubElement(ride, 'geom', name=f'vehicle_wheel_{name}', type='cylinder',
                      pos=_fmt(sx * wheels.x, sy * wheels.y, wheels.radius),
                      size=_fmt(wheels.radius, wheels.half_width), zaxis='0 1 0', rgba='0.1 0.1 0.1 1',
                      group=vehicle_group, **_NO_COLLISION)
    pitch = math.radians(camera.pitch_deg)
    # MuJoCo cameras look along -z with +y up: x = body right, y = body up tilted forward by pitch.
    xyaxes = _fmt(0, -1, 0, math.sin(pitch), 0, math.cos(pitch))
    for name, lateral in ((LEFT_CAMERA, camera.baseline_m / 2), (RIGHT_CAMERA, -camera.baseline_m / 2)):
        ET.SubElement(ride, 'camera', name=name, pos=_fmt(camera.mount_forward_m, lateral, camera.mount_height_m),
                      xyaxes=xyaxes, fovy=f'{camera.fovy_deg:.9f}')


def _actuators(root: ET.Element, vehicle: VehicleConfig) -> None:
    mass = vehicle.mass_kg
    yaw_inertia = mass * (vehicle.length_m ** 2 + vehicle.width_m ** 2) / 12
    # Force limits a few times what the drive's acceleration limits need: enough to track the
    # commands, small enough that a stalled push into an obstacle stays a gentle contact.
    force = 3.0 * mass * max(vehicle.max_accel_mps2, vehicle.max_decel_mps2)
    torque = 3.0 * yaw_inertia * vehicle.max_yaw_accel_rps2
    actuator = ET.SubElement(root, 'actuator')
    for name, gear, gain, limit in ((ACTUATORS[0], '1 0 0 0 0 0', mass, force),
                                    (ACTUATORS[1], '0 1 0 0 0 0', mass, force),
                                    (ACTUATORS[2], '0 0 0 0 0 1', yaw_inertia, torque)):
        ET.SubElement(actuator, 'velocity', name=name, site=VEHICLE_SITE, gear=gear,
                      kv=_fmt(gain / ACTUATOR_TIME_CONSTANT_S), forcelimited='true',
                      forcerange=_fmt(-limit, limit))
