"""A generated world as files: MJCF for MuJoCo, SDF + images for Gazebo, and a YAML description.

`world_files` returns every file's bytes by name, so writers decide how to store them (the
`dave world` command writes them atomically) and tests compare generations byte for byte.
"""
from __future__ import annotations

import yaml

from dave_sim.camera import StereoCameraConfig
from dave_sim.mjcf import world_to_mjcf
from dave_sim.sdf import sdf_images, world_to_sdf
from dave_sim.vehicle import VehicleConfig
from dave_sim.world import World, describe_world

MJCF_FILE = 'world.xml'
SDF_FILE = 'world.sdf'
DESCRIPTION_FILE = 'world.yaml'


def world_files(world: World, vehicle: VehicleConfig = VehicleConfig(),
                camera: StereoCameraConfig = StereoCameraConfig()) -> dict[str, bytes]:
    """{file name: contents} of the world in both formats plus its description."""
    files = {MJCF_FILE: world_to_mjcf(world, vehicle, camera).encode(),
             SDF_FILE: world_to_sdf(world, vehicle, camera).encode()}
    files.update(sdf_images(world))
    description = describe_world(world)
    description['files'] = {'mujoco': MJCF_FILE, 'gazebo': SDF_FILE,
                            'gazebo_images': sorted(name for name in files if name.endswith('.png'))}
    header = (f'# dave world {world.seed}: regenerate with `dave world --seed {world.seed} --config FILE '
              '--out DIR`,\n# FILE holding the `config` mapping below.\n')
    files[DESCRIPTION_FILE] = (header + yaml.safe_dump(description, sort_keys=False)).encode()
    return files
