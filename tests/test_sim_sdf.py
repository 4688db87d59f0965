"""Gazebo export: SDF worlds validated by libsdformat, the same scene as the MJCF, heightmap image,
the truck's sensors and drive, the ros_gz_bridge config, gazebo.launch.yaml and `dave world`.

SDF validation needs Debian's libsdformat12-12 + sdformat-sdf; those tests skip without them.
"""
import argparse
import functools
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import mujoco
import numpy as np
import pytest
import yaml

from dave_cli.commands import world as world_command
from dave_core.launch import load_launch_file
from dave_sim.camera import StereoCameraConfig
from dave_sim.rotations import quat_from_rpy
from dave_sim.scene import obstacle_objects, wall_object, wheel_layout
from dave_sim.sdf import (BASE_LINK, BUMPER_SENSOR, GROUND_TEXTURE_FILE, GZ_TOPICS, HEIGHTMAP_FILE, MODEL_NAME,
                          heightmap_image, world_to_sdf)
from dave_sim.sdf_validate import SdfValidationError, sdformat_available, validate_sdf
from dave_sim.vehicle import VehicleConfig
from dave_sim.world import WorldConfig, generate_world
from dave_sim.world_files import DESCRIPTION_FILE, MJCF_FILE, SDF_FILE, world_files

REPO = Path(__file__).resolve().parents[1]
SEEDS = range(20)
needs_sdformat = pytest.mark.skipif(not sdformat_available(),
                                    reason='libsdformat not installed (Debian: libsdformat12-12 sdformat-sdf)')


@functools.lru_cache(maxsize=None)
def _world_and_files(seed: int):
    """Generated once per seed for this module (the 20-seed tests share them)."""
    world = generate_world(seed)
    return world, world_files(world)


def _write(files: dict, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_bytes(content)
    return directory


@needs_sdformat
@pytest.mark.parametrize('seed', SEEDS)
def test_sdf_passes_libsdformat_and_mjcf_loads_in_mujoco(seed, tmp_path):
    world, files = _world_and_files(seed)
    directory = _write(files, tmp_path)
    validate_sdf(directory / SDF_FILE)
    model = mujoco.MjModel.from_xml_path(str(directory / MJCF_FILE))
    n_solids = sum(len(o.solids) for o in obstacle_objects(world)) + 4  # + walls
    assert np.count_nonzero(model.geom_group == 1) == n_solids


@pytest.mark.parametrize('seed', SEEDS)
def test_mjcf_loads_in_mujoco(seed):
    """The MuJoCo half of the bar, also where libsdformat is missing."""
    model = mujoco.MjModel.from_xml_string(_world_and_files(seed)[1][MJCF_FILE].decode())
    assert model.nq == 3 and model.nhfield == 1


def test_same_seed_gives_the_same_bytes_in_every_file():
    for seed in (0, 7):
        first, second = _world_and_files(seed)[1], world_files(generate_world(seed))
        assert list(first) == [MJCF_FILE, SDF_FILE, HEIGHTMAP_FILE, GROUND_TEXTURE_FILE, 'ground_normal.png',
                               DESCRIPTION_FILE]
        for name in first:
            assert first[name] == second[name], name
    other = world_files(generate_world(8))
    assert all(other[name] != first[name] for name in (MJCF_FILE, SDF_FILE, HEIGHTMAP_FILE, GROUND_TEXTURE_FILE))


@needs_sdformat
def test_validator_rejects_broken_sdf(tmp_path):
    directory = _write(_world_and_files(0)[1], tmp_path / 'good')
    text = (directory / SDF_FILE).read_text()
    cases = {
        'missing_child': (text.replace('<child>wheel_fl</child>', '<child>no_such_wheel</child>'),
                          'no_such_wheel'),
        'bad_mass': (text.replace('<mass>5</mass>', '<mass>heavy</mass>', 1), 'mass'),
        'not_xml': (text[:200], 'libsdformat rejected it'),
    }
    for name, (broken, culprit) in cases.items():
        assert broken != text, name
        path = directory / f'{name}.sdf'
        path.write_text(broken)
        with pytest.raises(SdfValidationError) as info:
            validate_sdf(path)
        message = str(info.value)
        assert culprit in message and str(path) in message and '\n' not in message, (name, message)
    (directory / HEIGHTMAP_FILE).unlink()
    with pytest.raises(SdfValidationError, match=f'<uri> {HEIGHTMAP_FILE} names a missing file'):
        validate_sdf(directory / SDF_FILE)
    with pytest.raises(SdfValidationError, match='no such SDF file'):
        validate_sdf(tmp_path / 'absent.sdf')


def _pose(element: ET.Element) -> np.ndarray:
    pose = element.find('pose')
    return np.zeros(6) if pose is None else np.array([float(v) for v in pose.text.split()])


def _sdf_size(geometry: ET.Element) -> tuple[str, np.ndarray]:
    shape = geometry[0]
    if shape.tag == 'box':
        return 'box', np.array([float(v) for v in shape.find('size').text.split()]) / 2
    if shape.tag == 'cylinder':
        r, length = float(shape.find('radius').text), float(shape.find('length').text)
        return 'cylinder', np.array([r, r, length / 2])
    return shape.tag, np.array([float(v) for v in shape.find('radii').text.split()])


def _same_rotation(quat: np.ndarray, rpy: np.ndarray) -> bool:
    other = np.array(quat_from_rpy(*rpy))
    return min(np.abs(quat - other).max(), np.abs(quat + other).max()) < 1e-6


@pytest.mark.parametrize('seed', [0, 4])
def test_sdf_and_mjcf_describe_the_same_scene(seed):
    world = generate_world(seed)
    sdf_world = ET.fromstring(world_to_sdf(world)).find('world')
    model = mujoco.MjModel.from_xml_string(world_files(world)[MJCF_FILE].decode())
    links = {m.get('name'): m.find('link') for m in sdf_world.findall('model')}
    solids = [s for o in obstacle_objects(world) for s in o.solids] + list(wall_object(world).solids)
    collisions = {c.get('name'): c for name in ('obstacles', 'walls') for c in links[name].findall('collision')}
    assert len(collisions) == len(solids)
    for solid in solids:
        collision = collisions[f'{solid.name}_collision']
        shape, size = _sdf_size(collision.find('geometry'))
        pose = _pose(collision)
        geom = model.geom(solid.name)
        assert shape == solid.shape
        assert np.allclose(size, solid.size, atol=1e-8)
        assert np.allclose(pose[:3], geom.pos, atol=1e-7) and np.allclose(pose[:3], solid.pos, atol=1e-7)
        assert _same_rotation(geom.quat, pose[3:])
    # The same light and colours.
    sun = sdf_world.find('light')
    assert np.allclose([float(v) for v in sun.find('direction').text.split()], world.light_dir)
    assert np.allclose(model.light('sun').dir, np.array(world.light_dir) / np.linalg.norm(world.light_dir), atol=1e-6)
    assert np.allclose([float(v) for v in sdf_world.find('scene/background').text.split()][:3], world.sky_rgb)


def test_heightmap_image_samples_the_terrain(tmp_path):
    world = generate_world(3)
    files = world_files(world)
    image = cv2.imdecode(np.frombuffer(files[HEIGHTMAP_FILE], np.uint8), cv2.IMREAD_UNCHANGED)
    side = image.shape[0]
    assert image.dtype == np.uint16 and image.shape == (side, side) and math.log2(side - 1).is_integer()
    assert (image.min(), image.max()) == (0, 65535)
    assert np.array_equal(image, heightmap_image(world)[0])
    sdf_root = ET.fromstring(files[SDF_FILE].decode())
    heightmap = sdf_root.find(".//model[@name='ground']/link/collision/geometry/heightmap")
    size = [float(v) for v in heightmap.find('size').text.split()]
    low = float(heightmap.find('pos').text.split()[2])
    coords = np.linspace(-size[0] / 2, size[0] / 2, side)
    for row, col in ((0, 0), (0, side - 1), (side // 3, side // 2), (side - 1, 7)):
        x, y = coords[col], coords[side - 1 - row]  # row 0 is the +y edge
        z = low + image[row, col] / 65535 * size[2]
        assert z == pytest.approx(float(world.terrain.height(x, y)), abs=size[2] / 65535)
    texture = cv2.imdecode(np.frombuffer(files[GROUND_TEXTURE_FILE], np.uint8), cv2.IMREAD_UNCHANGED)
    assert texture.shape == (256, 256, 3) and texture.std() > 3


def test_sdf_truck_has_the_stereo_pair_drive_odometry_and_bumper():
    camera, vehicle = StereoCameraConfig(), VehicleConfig()
    world = generate_world(1)
    truck = ET.fromstring(world_to_sdf(world, vehicle, camera)).find(f".//model[@name='{MODEL_NAME}']")
    pose = _pose(truck)
    assert (pose[0], pose[1], pose[5]) == pytest.approx((world.start.x, world.start.y, world.start.yaw))
    base = truck.find(f"link[@name='{BASE_LINK}']")
    cameras = base.findall("sensor[@type='camera']")
    assert [s.find('topic').text for s in cameras] == [GZ_TOPICS.left_image, GZ_TOPICS.right_image]
    poses = [_pose(s) for s in cameras]
    assert poses[0][1] - poses[1][1] == pytest.approx(camera.baseline_m)
    for sensor, sensor_pose in zip(cameras, poses):
        cam = sensor.find('camera')
        assert (int(cam.find('image/width').text), int(cam.find('image/height').text)) == (camera.width, camera.height)
        assert float(cam.find('horizontal_fov').text) == pytest.approx(math.radians(camera.hfov_deg))
        for name in ('fx', 'fy', 'cx', 'cy'):
            assert float(cam.find(f'lens/intrinsics/{name}').text) == pytest.approx(getattr(camera, name))
        assert sensor_pose[[0, 2, 4]] == pytest.approx([camera.mount_forward_m, camera.mount_height_m,
                                                       math.radians(camera.pitch_deg)])
    bumper = base.find(f"sensor[@name='{BUMPER_SENSOR}']")
    assert base.find(f"collision[@name='{bumper.find('contact/collision').text}']") is not None
    assert bumper.find('contact/topic').text == GZ_TOPICS.contacts
    drive = truck.find("plugin[@name='gz::sim::systems::DiffDrive']")
    joints = {j.get('name'): j for j in truck.findall('joint')}
    wheels = wheel_layout(vehicle)
    for side, sign in (('left', 1), ('right', -1)):
        names = [e.text for e in drive.findall(f'{side}_joint')]
        assert len(names) == 2  # skid steer: both wheels of a side
        for name in names:
            child = truck.find(f"link[@name='{joints[name].find('child').text}']")
            assert np.sign(_pose(child)[1]) == sign
    assert float(drive.find('wheel_separation').text) == pytest.approx(wheels.track_m)
    assert float(drive.find('wheel_radius').text) == pytest.approx(wheels.radius)
    assert drive.find('topic').text == GZ_TOPICS.cmd_vel
    odometry = truck.find("plugin[@name='gz::sim::systems::OdometryPublisher']")
    assert odometry.find('odom_topic').text == GZ_TOPICS.odometry
    assert odometry.find('robot_base_frame').text == BASE_LINK


def test_flat_world_gets_a_plane_and_no_images(tmp_path):
    world = generate_world(2, WorldConfig(terrain_relief_m=0.0))
    files = world_files(world)
    assert set(files) == {MJCF_FILE, SDF_FILE, DESCRIPTION_FILE}
    ground = ET.fromstring(files[SDF_FILE].decode()).find(".//model[@name='ground']/link/collision/geometry")
    assert ground.find('plane') is not None
    if sdformat_available():
        validate_sdf(_write(files, tmp_path) / SDF_FILE)


def test_bridge_config_maps_the_gazebo_topics_onto_the_contract():
    entries = yaml.safe_load((REPO / 'sim/gazebo/bridge.yaml').read_text())
    by_ros = {e['ros_topic_name']: e for e in entries}
    expected = {
        '/clock': (GZ_TOPICS.clock, 'rosgraph_msgs/msg/Clock', 'gz.msgs.Clock', 'GZ_TO_ROS'),
        '/stereo/left/image_raw': (GZ_TOPICS.left_image, 'sensor_msgs/msg/Image', 'gz.msgs.Image', 'GZ_TO_ROS'),
        '/stereo/right/image_raw': (GZ_TOPICS.right_image, 'sensor_msgs/msg/Image', 'gz.msgs.Image', 'GZ_TO_ROS'),
        '/stereo/left/camera_info': (GZ_TOPICS.camera_info(GZ_TOPICS.left_image), 'sensor_msgs/msg/CameraInfo',
                                     'gz.msgs.CameraInfo', 'GZ_TO_ROS'),
        '/stereo/right/camera_info': (GZ_TOPICS.camera_info(GZ_TOPICS.right_image), 'sensor_msgs/msg/CameraInfo',
                                      'gz.msgs.CameraInfo', 'GZ_TO_ROS'),
        '/odom': (GZ_TOPICS.odometry, 'nav_msgs/msg/Odometry', 'gz.msgs.Odometry', 'GZ_TO_ROS'),
        '/cmd_vel': (GZ_TOPICS.cmd_vel, 'geometry_msgs/msg/Twist', 'gz.msgs.Twist', 'ROS_TO_GZ'),
        '/sim/contacts': (GZ_TOPICS.contacts, 'ros_gz_interfaces/msg/Contacts', 'gz.msgs.Contacts', 'GZ_TO_ROS'),
    }
    assert len(entries) == len(by_ros) == len(expected)
    for ros_topic, (gz_topic, ros_type, gz_type, direction) in expected.items():
        entry = by_ros[ros_topic]
        assert (entry['gz_topic_name'], entry['ros_type_name'], entry['gz_type_name'], entry['direction']) == (
            gz_topic, ros_type, gz_type, direction), ros_topic
    assert GZ_TOPICS.camera_info('/dave/stereo/left/image_raw') == '/dave/stereo/left/camera_info'


def test_gazebo_launch_starts_gz_sim_the_bridge_and_the_stack(tmp_path):
    """Resolved by the project's launcher with stand-ins for `gz` and ros_gz_bridge (not installed here)."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'gz').write_text('#!/bin/sh\nexit 0\n')
    (bin_dir / 'gz').chmod(0o755)
    prefix = tmp_path / 'prefix'
    bridge = prefix / 'lib' / 'ros_gz_bridge' / 'parameter_bridge'
    bridge.parent.mkdir(parents=True)
    bridge.write_text('#!/bin/sh\nexit 0\n')
    bridge.chmod(0o755)
    index = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages'
    index.mkdir(parents=True)
    (index / 'ros_gz_bridge').write_text('')
    environ = dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ.get("PATH", "")}',
                   AMENT_PREFIX_PATH=str(prefix))
    description = load_launch_file(REPO / 'launch/gazebo.launch.yaml', {'world': '/tmp/w3/world.sdf'},
                                   environ=environ)
    gz, bridge_process, *stack = description.processes
    assert gz.cmd == ('gz', 'sim', '-r', '/tmp/w3/world.sdf') and gz.required
    assert bridge_process.cmd[0] == str(bridge)
    config = next(a.split(':=', 1)[1] for a in bridge_process.cmd if a.startswith('config_file:='))
    assert Path(config).resolve() == REPO / 'sim/gazebo/bridge.yaml'
    assert [p.node.name for p in stack] == ['steering', 'traversability', 'command']
    for process in stack:
        assert 'use_sim_time:=true' in process.cmd


def _run_world_command(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    world_command.add_arguments(parser)
    return world_command.run(parser.parse_args(list(argv)))


def test_dave_world_writes_both_formats_identically_twice(tmp_path, capsys):
    validate = ['--validate'] if sdformat_available() else []
    assert _run_world_command('--seed', '3', '--out', str(tmp_path / 'a'), *validate) == 0
    assert _run_world_command('--seed', '3', '--out', str(tmp_path / 'b')) == 0
    names = sorted(p.name for p in (tmp_path / 'a').iterdir())
    assert names == sorted([MJCF_FILE, SDF_FILE, DESCRIPTION_FILE, HEIGHTMAP_FILE, GROUND_TEXTURE_FILE,
                            'ground_normal.png'])
    for name in names:
        assert (tmp_path / 'a' / name).read_bytes() == (tmp_path / 'b' / name).read_bytes(), name
    described = yaml.safe_load((tmp_path / 'a' / DESCRIPTION_FILE).read_text())
    world = generate_world(3)
    assert described['seed'] == 3
    assert (described['start']['x'], described['start']['y'], described['start']['yaw']) == (
        world.start.x, world.start.y, world.start.yaw)
    assert (described['goal']['x'], described['goal']['y']) == world.goal
    mujoco.MjModel.from_xml_path(str(tmp_path / 'a' / MJCF_FILE))
    assert 'world seed 3' in capsys.readouterr().out


def test_dave_world_takes_a_config_and_reports_bad_ones_in_one_line(tmp_path, capsys):
    config = tmp_path / 'small.yaml'
    config.write_text('size_m: 12\nn_obstacles: 6\nmin_start_goal_distance_m: 5\nterrain_relief_m: 0.1\n')
    assert _run_world_command('--seed', '1', '--config', str(config), '--out', str(tmp_path / 'w')) == 0
    described = yaml.safe_load((tmp_path / 'w' / DESCRIPTION_FILE).read_text())
    assert described['config']['size_m'] == 12.0 and sum(described['obstacles'].values()) == 6
    capsys.readouterr()
    config.write_text('goal: [50, 0]\n')
    assert _run_world_command('--seed', '1', '--config', str(config), '--out', str(tmp_path / 'x')) == 2
    error = capsys.readouterr().err
    assert error.count('\n') == 1 and "'goal' must lie inside the arena" in error and str(config) in error
    assert not (tmp_path / 'x').exists()
    assert _run_world_command('--seed', '-1', '--out', str(tmp_path / 'y')) == 2
    assert 'seed' in capsys.readouterr().err
