"""The ament_python packages build with colcon as on a robot, and package.xml declares what the code imports."""
import ast
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {'dave_core': ROOT / 'ros_ws/src/dave_core', 'dave_nodes': ROOT / 'ros_ws/src/dave_nodes',
            'dave_cli': ROOT / 'ros_ws/src/dave_cli',
            'dave_sim': ROOT / 'sim', 'dave_models': ROOT / 'models'}
# Import name -> package.xml key, for every dependency that has one (ROS packages, rosdep keys).
ROS_KEYS = {
    'rclpy': 'rclpy', 'rcl_interfaces': 'rcl_interfaces', 'builtin_interfaces': 'builtin_interfaces',
    'std_msgs': 'std_msgs', 'sensor_msgs': 'sensor_msgs', 'geometry_msgs': 'geometry_msgs',
    'nav_msgs': 'nav_msgs', 'rosgraph_msgs': 'rosgraph_msgs', 'diagnostic_msgs': 'diagnostic_msgs',
    'numpy': 'python3-numpy', 'yaml': 'python3-yaml', 'cv2': 'python3-opencv',
    'dave_core': 'dave_core', 'dave_nodes': 'dave_nodes',
}


def _package_xml(path: Path) -> ET.Element:
    return ET.parse(path / 'package.xml').getroot()


def _imports(package_dir: Path, module: str) -> set[str]:
    """Top-level modules imported at module level anywhere in the package (lazy imports excluded)."""
    names = set()
    for file in (package_dir / module).rglob('*.py'):
        for node in ast.parse(file.read_text()).body:
            if isinstance(node, ast.Import):
                names |= {alias.name.split('.')[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split('.')[0])
    return names


@pytest.mark.parametrize('name', sorted(PACKAGES))
def test_package_xml_declares_imported_ros_dependencies(name):
    path = PACKAGES[name]
    root = _package_xml(path)
    assert root.findtext('name') == name
    assert root.find('export/build_type').text == 'ament_python'
    declared = {e.text for tag in ('depend', 'exec_depend') for e in root.findall(tag)}
    needed = {ROS_KEYS[m] for m in _imports(path, name) if m in ROS_KEYS and m != name}
    assert needed <= declared, f'{name}/package.xml lacks {sorted(needed - declared)}'


@pytest.mark.parametrize('name', sorted(PACKAGES))
def test_versions_agree_between_package_xml_and_setup_py(name):
    path = PACKAGES[name]
    version = _package_xml(path).findtext('version')
    assert f"version='{version}'" in (path / 'setup.py').read_text()


@pytest.mark.skipif(shutil.which('colcon', path=str(Path(sys.executable).parent)) is None,
                    reason='colcon is installed by make setup')
def test_colcon_builds_the_workspace_like_a_robot(tmp_path):
    colcon = str(Path(sys.executable).parent / 'colcon')
    proc = subprocess.run(
        [colcon, '--log-base', str(tmp_path / 'log'), 'build', '--base-paths', *map(str, PACKAGES.values()),
         '--build-base', str(tmp_path / 'build'), '--install-base', str(tmp_path / 'install')],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    install = tmp_path / 'install'
    # ros2 launch / ros2 run look for node executables in lib/<package>/.
    for exe in ('sim_node', 'steering_node', 'command_node', 'stereo_camera_node', 'traversability_node',
                'teleop_node', 'record_node'):
        assert (install / 'dave_nodes/lib/dave_nodes' / exe).is_file(), exe
    for name in PACKAGES:
        assert (install / name / 'share' / name / 'package.xml').is_file()
        assert (install / name / 'share/ament_index/resource_index/packages' / name).is_file()
    assert (install / 'dave_cli/lib/dave_cli/dave').is_file()
    profiles = list(install.glob('dave_core/lib/python3*/site-packages/dave_core/config/fastdds_localhost.xml'))
    assert profiles, 'the Fast DDS profile must be installed with dave_core'
