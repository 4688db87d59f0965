"""World + vehicle + stereo camera -> SDF (Gazebo) world: the same scene as the MuJoCo one.

What the world holds (SDF 1.9, the newest version libsdformat 12 validates; gz-sim reads it):
- terrain: a heightmap whose image (HEIGHTMAP_FILE, 16-bit greyscale, (2^n + 1)^2 pixels, top
  row = the +y edge, full 0..65535 range) samples the world's terrain function, textured with
  GROUND_TEXTURE_FILE; a flat world gets a plane instead. The images are written next to the
  SDF and referenced by relative URI (gz-sim resolves those against the SDF file);
- walls and obstacles: two static models built from the same solids (scene.py) as the MJCF;
- the sun, ambient light and background colour of the world's look;
- the truck MODEL_NAME: chassis link with the contact sensor BUMPER_SENSOR and two camera sensors
  (the intrinsics, 0.12 m baseline, image size and pitch of StereoCameraConfig), four wheels on
  revolute joints driven by the DiffDrive system (skid steer: two joints per side) from
  GZ_TOPICS.cmd_vel, and the OdometryPublisher system (ground-truth odometry, like the MuJoCo
  simulator's /odom) on GZ_TOPICS.odometry;
- world systems: physics, sensors (ogre2), scene broadcaster, user commands, contact.
sim/gazebo/bridge.yaml maps the GZ_TOPICS onto the project's ROS topics.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

from dave_sim.camera import StereoCameraConfig
from dave_sim.mjcf import NEAR_CLIP_M, far_clip_m
from dave_sim.obstacles import RGBA
from dave_sim.png import encode_png
from dave_sim.rotations import rpy_from_quat
from dave_sim.scene import ground_half_extent_m, obstacle_objects, wall_object, wheel_layout
from dave_sim.terrain import ride_pose, sample_terrain
from dave_sim.vehicle import VehicleConfig
from dave_sim.world import World

SDF_VERSION = '1.9'
MODEL_NAME = 'dave_truck'
BASE_LINK = 'base_link'
CHASSIS_COLLISION = 'chassis_collision'
BUMPER_SENSOR = 'bumper'
HEIGHTMAP_FILE = 'heightmap.png'
GROUND_TEXTURE_FILE = 'ground_diffuse.png'
GROUND_NORMAL_FILE = 'ground_normal.png'
LEFT_FRAME = 'stereo_left_optical_frame'  # the frame ids of the MuJoCo simulator node
RIGHT_FRAME = 'stereo_right_optical_frame'
WHEEL_MASS_KG = 0.15
_TEXTURE_PIXELS = 256


@dataclass(frozen=True)
class GzTopics:
    """Gazebo transport topics of the world; a camera's info topic is its image topic's sibling."""

    left_image: str = '/dave/stereo/left/image_raw'
    right_image: str = '/dave/stereo/right/image_raw'
    cmd_vel: str = f'/model/{MODEL_NAME}/cmd_vel'
    odometry: str = f'/model/{MODEL_NAME}/odometry'
    contacts: str = f'/model/{MODEL_NAME}/bumper'
    clock: str = '/clock'

    @staticmethod
    def camera_info(image_topic: str) -> str:
        """gz-sensors publishes camera info next to the image: <parent of image topic>/camera_info."""
        return image_topic.rsplit('/', 1)[0] + '/camera_info'


GZ_TOPICS = GzTopics()

_WORLD_SYSTEMS = (
    ('gz-sim-physics-system', 'gz::sim::systems::Physics', ()),
    ('gz-sim-user-commands-system', 'gz::sim::systems::UserCommands', ()),
    ('gz-sim-scene-broadcaster-system', 'gz::sim::systems::SceneBroadcaster', ()),
    ('gz-sim-sensors-system', 'gz::sim::systems::Sensors', (('render_engine', 'ogre2'),)),
    ('gz-sim-contact-system', 'gz::sim::systems::Contact', ()),
)


def _fmt(*values: float) -> str:
    return ' '.join(f'{v:.9g}' for v in values)


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text
    return element


def _pose(parent: ET.Element, x: float, y: float, z: float, roll: float = 0.0, pitch: float = 0.0,
          yaw: float = 0.0) -> None:
    _text(parent, 'pose', _fmt(x, y, z, roll, pitch, yaw))


def heightmap_pixels(world: World) -> int:
    """Side of the heightmap image: 2^n + 1 (Gazebo's terrain needs it) with spacing <= terrain_resolution_m."""
    cells = 2 * ground_half_extent_m(world) / world.config.terrain_resolution_m
    return 2 ** max(5, math.ceil(math.log2(cells))) + 1


def heightmap_image(world: World) -> tuple[np.ndarray, float, float]:
    """(uint16 image, z of black, z of white): the terrain over the drawn ground, top row = +y edge."""
    half = ground_half_extent_m(world)
    grid = sample_terrain(world.terrain, half, 2 * half / (heightmap_pixels(world) - 1))
    low, high = float(grid.heights.min()), float(grid.heights.max())
    span = max(high - low, 1e-9)
    # The full 0..65535 range: gz-physics (dartsim) puts the brightest pixel at the top of <size>,
    # which then agrees with plain 16-bit scaling.
    image = np.round((grid.heights - low) / span * 65535.0).astype(np.uint16)
    return np.flipud(image), low, low + span


def ground_texture(world: World) -> np.ndarray:
    """One RGB tile of the ground texture (tile_m on a side): the world's pattern plus speckles."""
    n = _TEXTURE_PIXELS
    first, second = (np.asarray(c) for c in world.ground_rgb)
    style = world.ground_style
    v, u = np.mgrid[0:n, 0:n] / n
    if style.pattern == 'checker':  # 2 x 2 cells per tile, like MuJoCo's builtin checker
        mix = ((u < 0.5) ^ (v < 0.5)).astype(float)
    elif style.pattern == 'gradient':  # first colour at the centre, second at the rim
        mix = np.clip(np.hypot(u - 0.5, v - 0.5) / 0.5, 0.0, 1.0)
    else:
        mix = np.zeros((n, n))
    rgb = first * (1 - mix[..., None]) + second * mix[..., None]
    rng = np.random.default_rng(np.random.SeedSequence([world.seed, world.attempt, 7]))
    rgb[rng.random((n, n)) < style.mark_density] = world.ground_mark_rgb()
    return np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)


def sdf_images(world: World) -> dict[str, bytes]:
    """PNG files the SDF of `world` references, by file name (none for a flat world)."""
    if world.terrain.is_flat:
        return {}
    normal = np.zeros((64, 64, 3), np.uint8)
    normal[...] = (128, 128, 255)  # a flat normal map: the heightmap's own normals do the shading
    return {HEIGHTMAP_FILE: encode_png(heightmap_image(world)[0]),
            GROUND_TEXTURE_FILE: encode_png(ground_texture(world)),
            GROUND_NORMAL_FILE: encode_png(normal)}


def world_to_sdf(world: World, vehicle: VehicleConfig = VehicleConfig(),
                 camera: StereoCameraConfig = StereoCameraConfig(), camera_rate_hz: float = 15.0,
                 physics_dt: float = 0.005) -> str:
    """The complete SDF document of `world` with the truck at its start pose."""
    if not (math.isfinite(physics_dt) and 0 < physics_dt <= 0.05):
        raise ValueError(f'physics_dt must be in (0, 0.05] s, got {physics_dt!r}')
    if not (math.isfinite(camera_rate_hz) and camera_rate_hz > 0):
        raise ValueError(f'camera_rate_hz must be > 0, got {camera_rate_hz!r}')
    root = ET.Element('sdf', version=SDF_VERSION)
    w = ET.SubElement(root, 'world', name=f'dave_world_{world.seed}')
    physics = ET.SubElement(w, 'physics', name='fixed_step', type='ignored')
    _text(physics, 'max_step_size', _fmt(physics_dt))
    _text(physics, 'real_time_factor', '1')
    for filename, name, options in _WORLD_SYSTEMS:
        plugin = ET.SubElement(w, 'plugin', filename=filename, name=name)
        for tag, value in options:
            _text(plugin, tag, value)
    _text(w, 'gravity', '0 0 -9.81')
    scene = ET.SubElement(w, 'scene')
    a = world.ambient
    _text(scene, 'ambient', _fmt(a, a, a, 1))
    _text(scene, 'background', _fmt(*world.sky_rgb, 1))
    _text(scene, 'shadows', 'false')
    _text(scene, 'grid', 'false')
    sun = ET.SubElement(w, 'light', type='directional', name='sun')
    _text(sun, 'cast_shadows', 'false')
    _pose(sun, 0, 0, 30)
    _text(sun, 'diffuse', _fmt(*world.light_rgb, 1))
    _text(sun, 'specular', '0.1 0.1 0.1 1')
    _text(sun, 'direction', _fmt(*world.light_dir))
    _ground(w, world)
    walls = wall_object(world)
    if walls is not None:
        model = _static_model(w, 'walls')
        link = ET.SubElement(model, 'link', name='link')
        for solid in walls.solids:
            _solid(link, solid.name, solid.shape, solid.size, solid.pos, rpy_from_quat(solid.quat), solid.rgba)
    obstacles = obstacle_objects(world)
    if obstacles:
        # One static model: libsdformat and gz-sim pay per model and link, not per collision.
        model = _static_model(w, 'obstacles')
        link = ET.SubElement(model, 'link', name='link')
        for obstacle in obstacles:
            for solid in obstacle.solids:
                _solid(link, solid.name, solid.shape, solid.size, solid.pos, rpy_from_quat(solid.quat), solid.rgba)
    _truck(w, world, vehicle, camera, camera_rate_hz)
    ET.indent(root)
    return '<?xml version="1.0"?>\n' + ET.tostring(root, encoding='unicode') + '\n'


def _static_model(parent: ET.Element, name: str) -> ET.Element:
    model = ET.SubElement(parent, 'model', name=name)
    _text(model, 'static', 'true')
    return model


def _ground(w: ET.Element, world: World) -> None:
    model = _static_model(w, 'ground')
    link = ET.SubElement(model, 'link', name='link')
    half = ground_half_extent_m(world)
    if world.terrain.is_flat:
        for tag in ('collision', 'visual'):
            element = ET.SubElement(link, tag, name=tag)
            _pose(element, 0, 0, world.terrain.offset)
            plane = ET.SubElement(ET.SubElement(element, 'geometry'), 'plane')
            _text(plane, 'normal', '0 0 1')
            _text(plane, 'size', _fmt(2 * half, 2 * half))
            if tag == 'visual':
                _material(element, (*np.mean(world.ground_rgb, axis=0).round(4), 1.0))
        return
    _, low, high = heightmap_image(world)
    for tag in ('collision', 'visual'):
        element = ET.SubElement(link, tag, name=tag)
        heightmap = ET.SubElement(ET.SubElement(element, 'geometry'), 'heightmap')
        if tag == 'visual':
            texture = ET.SubElement(heightmap, 'texture')
            _text(texture, 'size', _fmt(world.ground_style.tile_m))
            _text(texture, 'diffuse', GROUND_TEXTURE_FILE)
            _text(texture, 'normal', GROUND_NORMAL_FILE)
            _text(heightmap, 'use_terrain_paging', 'false')
        _text(heightmap, 'uri', HEIGHTMAP_FILE)
        _text(heightmap, 'size', _fmt(2 * half, 2 * half, high - low))
        _text(heightmap, 'pos', _fmt(0, 0, low))


def _material(parent: ET.Element, rgba: RGBA) -> None:
    material = ET.SubElement(parent, 'material')
    _text(material, 'ambient', _fmt(*rgba))
    _text(material, 'diffuse', _fmt(*rgba))
    _text(material, 'specular', '0.05 0.05 0.05 1')


def _geometry(parent: ET.Element, shape: str, size: tuple[float, float, float]) -> None:
    geometry = ET.SubElement(parent, 'geometry')
    if shape == 'box':
        _text(ET.SubElement(geometry, 'box'), 'size', _fmt(*(2 * s for s in size)))
    elif shape == 'cylinder':
        cylinder = ET.SubElement(geometry, 'cylinder')
        _text(cylinder, 'radius', _fmt(size[0]))
        _text(cylinder, 'length', _fmt(2 * size[2]))
    elif shape == 'ellipsoid':
        _text(ET.SubElement(geometry, 'ellipsoid'), 'radii', _fmt(*size))
    else:
        raise ValueError(f'no SDF geometry for shape {shape!r}')


def _solid(link: ET.Element, name: str, shape: str, size: tuple[float, float, float],
           pos: tuple[float, float, float], rpy: tuple[float, float, float], rgba: RGBA) -> None:
    for tag in ('collision', 'visual'):
        element = ET.SubElement(link, tag, name=f'{name}_{tag}')
        _pose(element, *pos, *rpy)
        _geometry(element, shape, size)
        if tag == 'visual':
            _material(element, rgba)


def _inertial(link: ET.Element, mass: float, pos: tuple[float, float, float],
              diagonal: tuple[float, float, float]) -> None:
    inertial = ET.SubElement(link, 'inertial')
    _pose(inertial, *pos)
    _text(inertial, 'mass', _fmt(mass))
    inertia = ET.SubElement(inertial, 'inertia')
    for tag, value in zip(('ixx', 'iyy', 'izz'), diagonal):
        _text(inertia, tag, _fmt(value))
    for tag in ('ixy', 'ixz', 'iyz'):
        _text(inertia, tag, '0')


def _truck(w: ET.Element, world: World, vehicle: VehicleConfig, camera: StereoCameraConfig,
           camera_rate_hz: float) -> None:
    wheels = wheel_layout(vehicle)
    half = ground_half_extent_m(world)
    grid = sample_terrain(world.terrain, half, 2 * half / (heightmap_pixels(world) - 1))
    start = world.start
    pose = ride_pose(grid.height_at, start.x, start.y, start.yaw, wheels.wheelbase_m, wheels.track_m)
    model = ET.SubElement(w, 'model', name=MODEL_NAME)
    # A centimetre above the ground: the truck settles onto its wheels instead of starting in contact.
    _pose(model, start.x, start.y, pose.z + 0.01, pose.roll, pose.pitch, start.yaw)

    base = ET.SubElement(model, 'link', name=BASE_LINK)
    length, width, height, mass = vehicle.length_m, vehicle.width_m, vehicle.height_m, vehicle.mass_kg
    z_centre = vehicle.ground_clearance_m + height / 2
    _inertial(base, mass, (0, 0, z_centre), (mass * (width ** 2 + height ** 2) / 12,
                                             mass * (length ** 2 + height ** 2) / 12,
                                             mass * (length ** 2 + width ** 2) / 12))
    collision = ET.SubElement(base, 'collision', name=CHASSIS_COLLISION)
    _pose(collision, 0, 0, z_centre)
    _geometry(collision, 'box', (length / 2, width / 2, height / 2))
    visual = ET.SubElement(base, 'visual', name='chassis_visual')
    _pose(visual, 0, 0, z_centre)
    _geometry(visual, 'box', (length / 2, width / 2, height / 2))
    _material(visual, (0.8, 0.15, 0.1, 1.0))
    for name, topic, lateral, frame in (('left_camera', GZ_TOPICS.left_image, camera.baseline_m / 2, LEFT_FRAME),
                                        ('right_camera', GZ_TOPICS.right_image, -camera.baseline_m / 2, RIGHT_FRAME)):
        _camera_sensor(base, name, topic, frame, camera, lateral, camera_rate_hz, far_clip_m(world))
    bumper = ET.SubElement(base, 'sensor', name=BUMPER_SENSOR, type='contact')
    _text(bumper, 'always_on', 'true')
    _text(bumper, 'update_rate', '50')
    contact = ET.SubElement(bumper, 'contact')
    _text(contact, 'collision', CHASSIS_COLLISION)
    _text(contact, 'topic', GZ_TOPICS.contacts)

    r, half_width = wheels.radius, wheels.half_width
    wheel_inertia = (WHEEL_MASS_KG * (3 * r ** 2 + (2 * half_width) ** 2) / 12,) * 2 + (WHEEL_MASS_KG * r ** 2 / 2,)
    joints = {'left': [], 'right': []}
    for name, sx, sy in (('fl', 1, 1), ('fr', 1, -1), ('rl', -1, 1), ('rr', -1, -1)):
        link = ET.SubElement(model, 'link', name=f'wheel_{name}')
        # The wheel's cylinder axis (its z) points along the body y axis.
        _pose(link, sx * wheels.x, sy * wheels.y, r, -math.pi / 2, 0, 0)
        _inertial(link, WHEEL_MASS_KG, (0, 0, 0), wheel_inertia)
        for tag in ('collision', 'visual'):
            element = ET.SubElement(link, tag, name=f'wheel_{name}_{tag}')
            _geometry(element, 'cylinder', (r, r, half_width))
            if tag == 'collision':
                # Skid steer turns by sliding its tyres sideways: less grip across than along.
                friction = ET.SubElement(ET.SubElement(ET.SubElement(element, 'surface'), 'friction'), 'ode')
                _text(friction, 'mu', '1.0')
                _text(friction, 'mu2', '0.5')
            else:
                _material(element, (0.1, 0.1, 0.1, 1.0))
        joint = ET.SubElement(model, 'joint', name=f'wheel_{name}_joint', type='revolute')
        _text(joint, 'parent', BASE_LINK)
        _text(joint, 'child', f'wheel_{name}')
        axis = ET.SubElement(joint, 'axis')
        ET.SubElement(axis, 'xyz', expressed_in='__model__').text = '0 1 0'
        joints['left' if sy > 0 else 'right'].append(joint.get('name'))

    drive = ET.SubElement(model, 'plugin', filename='gz-sim-diff-drive-system', name='gz::sim::systems::DiffDrive')
    for side in ('left', 'right'):
        for joint_name in joints[side]:
            _text(drive, f'{side}_joint', joint_name)
    _text(drive, 'wheel_separation', _fmt(wheels.track_m))
    _text(drive, 'wheel_radius', _fmt(r))
    _text(drive, 'topic', GZ_TOPICS.cmd_vel)
    _text(drive, 'max_linear_velocity', _fmt(vehicle.max_speed_mps))
    _text(drive, 'min_linear_velocity', _fmt(-vehicle.max_reverse_mps))
    _text(drive, 'max_angular_velocity', _fmt(vehicle.max_yaw_rate_rps))
    _text(drive, 'min_angular_velocity', _fmt(-vehicle.max_yaw_rate_rps))
    _text(drive, 'max_linear_acceleration', _fmt(vehicle.max_accel_mps2))
    _text(drive, 'min_linear_acceleration', _fmt(-vehicle.max_decel_mps2))
    _text(drive, 'max_angular_acceleration', _fmt(vehicle.max_yaw_accel_rps2))
    _text(drive, 'min_angular_acceleration', _fmt(-vehicle.max_yaw_accel_rps2))
    odometry = ET.SubElement(model, 'plugin', filename='gz-sim-odometry-publisher-system',
                             name='gz::sim::systems::OdometryPublisher')
    _text(odometry, 'odom_frame', 'odom')
    _text(odometry, 'robot_base_frame', BASE_LINK)
    _text(odometry, 'odom_topic', GZ_TOPICS.odometry)
    _text(odometry, 'odom_publish_frequency', '50')
    _text(odometry, 'dimensions', '3')


def _camera_sensor(link: ET.Element, name: str, topic: str, frame: str, camera: StereoCameraConfig,
                   lateral: float, rate_hz: float, far_m: float) -> None:
    sensor = ET.SubElement(link, 'sensor', name=name, type='camera')
    # Gazebo cameras look along their +x: pitching the frame by +pitch tilts the view down.
    _pose(sensor, camera.mount_forward_m, lateral, camera.mount_height_m, 0, math.radians(camera.pitch_deg), 0)
    _text(sensor, 'always_on', 'true')
    _text(sensor, 'update_rate', _fmt(rate_hz))
    _text(sensor, 'topic', topic)
    _text(sensor, 'gz_frame_id', frame)  # header frame_id in gz-sim Harmonic and newer
    cam = ET.SubElement(sensor, 'camera', name=name)
    _text(cam, 'horizontal_fov', _fmt(math.radians(camera.hfov_deg)))
    image = ET.SubElement(cam, 'image')
    _text(image, 'width', str(camera.width))
    _text(image, 'height', str(camera.height))
    _text(image, 'format', 'R8G8B8')
    clip = ET.SubElement(cam, 'clip')
    _text(clip, 'near', _fmt(NEAR_CLIP_M))
    _text(clip, 'far', _fmt(far_m))
    intrinsics = ET.SubElement(ET.SubElement(cam, 'lens'), 'intrinsics')
    for tag, value in (('fx', camera.fx), ('fy', camera.fy), ('cx', camera.cx), ('cy', camera.cy), ('s', 0.0)):
        _text(intrinsics, tag, _fmt(value))
