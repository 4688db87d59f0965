"""World + vehicle + stereo camera -> MJCF (MuJoCo XML) text.

Scene contract the simulator relies on (names below are constants of this module):
- the truck is body VEHICLE_BODY with planar joints (slide x, slide y, hinge yaw, in that
  order, so qpos = [x, y, yaw] in the world frame) and three velocity actuators on its base
  site: forward speed, lateral speed (held at zero: tyre grip) and yaw rate, all in the body
  frame, with force limits so obstacles stop the truck instead of being driven through;
- only the chassis collides, and only with obstacles (contype/conaffinity bits), so contacts
  are exactly vehicle-obstacle contacts and the ground costs no collision work;
- each geom's `group` is its labels.GeomCategory, from which ground truth classes are made;
- keyframe START_KEY holds the world's start pose.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable

from dave_sim.camera import StereoCameraConfig
from dave_sim.labels import GeomCategory
from dave_sim.vehicle import VehicleConfig
from dave_sim.world import Obstacle, World

VEHICLE_BODY = 'vehicle'
VEHICLE_SITE = 'vehicle_base'
CHASSIS_GEOM = 'vehicle_chassis'
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

# Collision bits: obstacles collide with the vehicle only; the ground collides with nothing.
_OBSTACLE_BITS = {'contype': '1', 'conaffinity': '0'}
_VEHICLE_BITS = {'contype': '0', 'conaffinity': '1'}
_NO_COLLISION = {'contype': '0', 'conaffinity': '0'}


def _fmt(*values: float) -> str:
    return ' '.join(f'{v:.9g}' for v in values)


def _cylinder_geom(parent: ET.Element, name: str, o: Obstacle) -> ET.Element:
    return ET.SubElement(parent, 'geom', name=name, type='cylinder', pos=_fmt(o.x, o.y, o.height / 2),
                         size=_fmt(o.radius, o.height / 2), rgba=_fmt(*o.rgba))


def _box_geom(parent: ET.Element, name: str, o: Obstacle) -> ET.Element:
    return ET.SubElement(parent, 'geom', name=name, type='box', pos=_fmt(o.x, o.y, o.height / 2),
                         size=_fmt(o.radius, o.radius, o.height / 2), euler=_fmt(0, 0, o.yaw),
                         rgba=_fmt(*o.rgba))


# MJCF writer of each obstacle kind; add an entry with each new kind (see world.OBSTACLE_KINDS).
GEOM_WRITERS: dict[str, Callable[[ET.Element, str, Obstacle], ET.Element]] = {
    'cylinder': _cylinder_geom,
    'box': _box_geom,
}


def far_clip_m(world: World) -> float:
    """Far clip plane: beyond the farthest visible ground (the plane spans twice the arena)."""
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
    _assets(root, world)
    worldbody = ET.SubElement(root, 'worldbody')
    ET.SubElement(worldbody, 'light', name='sun', type='directional', pos='0 0 30',
                  dir=_fmt(*world.light_dir), diffuse='0.75 0.75 0.7', specular='0.1 0.1 0.1',
                  castshadow='false')
    half = world.config.half_size_m
    ET.SubElement(worldbody, 'geom', name='ground', type='plane', size=_fmt(2 * half, 2 * half, 0.1),
                  material='ground', group=str(GeomCategory.GROUND), **_NO_COLLISION)
    if world.config.walls:
        _walls(worldbody, world)
    for i, obstacle in enumerate(world.obstacles):
        geom = GEOM_WRITERS[obstacle.kind](worldbody, f'obstacle_{i:03d}', obstacle)
        geom.set('group', str(GeomCategory.OBSTACLE))
        geom.attrib.update(_OBSTACLE_BITS)
    _vehicle(worldbody, vehicle, camera)
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
    ET.SubElement(visual, 'headlight', ambient='0.35 0.35 0.35', diffuse='0.2 0.2 0.2', specular='0 0 0')


def _assets(root: ET.Element, world: World) -> None:
    assets = ET.SubElement(root, 'asset')
    sky = world.sky_rgb
    horizon = tuple(min(1.0, 0.5 * c + 0.5) for c in sky)
    ET.SubElement(assets, 'texture', name='sky', type='skybox', builtin='gradient', rgb1=_fmt(*sky),
                  rgb2=_fmt(*horizon), width='64', height='64')
    (r1, g1, b1), (r2, g2, b2) = world.ground_rgb
    # Checker for large-scale structure plus random speckles for fine texture stereo can match.
    ET.SubElement(assets, 'texture', name='ground', type='2d', builtin='checker',
                  rgb1=_fmt(r1, g1, b1), rgb2=_fmt(r2, g2, b2), width='512', height='512',
                  mark='random', random='0.08', markrgb=_fmt(min(1, r1 + 0.2), min(1, g1 + 0.2), min(1, b1 + 0.15)))
    # texuniform: texrepeat is per metre, so one checker cell is 1 m whatever the arena size.
    ET.SubElement(assets, 'material', name='ground', texture='ground', texuniform='true',
                  texrepeat='0.5 0.5', reflectance='0')


def _walls(worldbody: ET.Element, world: World) -> None:
    cfg = world.config
    half, t, h = cfg.half_size_m, cfg.wall_thickness_m, cfg.wall_height_m
    offset = half + t / 2  # inner faces exactly on the arena boundary
    length = half + t
    for name, x, y, sx, sy in (('wall_east', offset, 0, t / 2, length), ('wall_west', -offset, 0, t / 2, length),
                               ('wall_north', 0, offset, length, t / 2), ('wall_south', 0, -offset, length, t / 2)):
        ET.SubElement(worldbody, 'geom', name=name, type='box', pos=_fmt(x, y, h / 2), size=_fmt(sx, sy, h / 2),
                      rgba='0.62 0.6 0.56 1', group=str(GeomCategory.OBSTACLE), **_OBSTACLE_BITS)


def _vehicle(worldbody: ET.Element, vehicle: VehicleConfig, camera: StereoCameraConfig) -> None:
    body = ET.SubElement(worldbody, 'body', name=VEHICLE_BODY, pos='0 0 0')
    # Slides before the hinge: the slides then move along world axes, so qpos = [x, y, yaw].
    ET.SubElement(body, 'joint', name='vehicle_x', type='slide', axis='1 0 0')
    ET.SubElement(body, 'joint', name='vehicle_y', type='slide', axis='0 1 0')
    ET.SubElement(body, 'joint', name='vehicle_yaw', type='hinge', axis='0 0 1')
    length, width, height, mass = vehicle.length_m, vehicle.width_m, vehicle.height_m, vehicle.mass_kg
    z_centre = vehicle.ground_clearance_m + height / 2
    inertia = (mass * (width ** 2 + height ** 2) / 12, mass * (length ** 2 + height ** 2) / 12,
               mass * (length ** 2 + width ** 2) / 12)
    ET.SubElement(body, 'inertial', pos=_fmt(0, 0, z_centre), mass=_fmt(mass), diaginertia=_fmt(*inertia))
    vehicle_group = str(GeomCategory.VEHICLE)
    ET.SubElement(body, 'geom', name=CHASSIS_GEOM, type='box', pos=_fmt(0, 0, z_centre),
                  size=_fmt(length / 2, width / 2, height / 2), rgba='0.8 0.15 0.1 1',
                  friction='0.5 0.005 0.0001', group=vehicle_group, **_VEHICLE_BITS)
    wheel_radius = vehicle.ground_clearance_m + height / 4
    for name, sx, sy in (('fl', 1, 1), ('fr', 1, -1), ('rl', -1, 1), ('rr', -1, -1)):
        ET.SubElement(body, 'geom', name=f'vehicle_wheel_{name}', type='cylinder',
                      pos=_fmt(sx * length * 0.32, sy * (width / 2 + 0.02), wheel_radius),
                      size=_fmt(wheel_radius, 0.02), zaxis='0 1 0', rgba='0.1 0.1 0.1 1',
                      group=vehicle_group, **_NO_COLLISION)
    ET.SubElement(body, 'site', name=VEHICLE_SITE, pos='0 0 0')
    pitch = math.radians(camera.pitch_deg)
    # MuJoCo cameras look along -z with +y up: x = body right, y = body up tilted forward by pitch.
    xyaxes = _fmt(0, -1, 0, math.sin(pitch), 0, math.cos(pitch))
    for name, lateral in ((LEFT_CAMERA, camera.baseline_m / 2), (RIGHT_CAMERA, -camera.baseline_m / 2)):
        ET.SubElement(body, 'camera', name=name, pos=_fmt(camera.mount_forward_m, lateral, camera.mount_height_m),
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
