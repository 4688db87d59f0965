"""The one place that decides the ROS environment: localhost discovery and the Fast DDS profile."""
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from dave_core.rosenv import fastdds_profile_path, ros_env


def test_forced_environment_keeps_dds_on_this_host():
    env = ros_env({'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET', 'ROS_LOCALHOST_ONLY': '1'},
                  domain_id=42, force_localhost=True)
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert env['FASTDDS_DEFAULT_PROFILES_FILE'] == str(fastdds_profile_path())
    assert env['ROS_DOMAIN_ID'] == '42'
    assert 'ROS_LOCALHOST_ONLY' not in env


def test_users_own_discovery_range_is_kept_unless_forced():
    assert ros_env({'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET'})['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'SUBNET'
    assert ros_env({})['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'


def test_bad_domain_id_is_rejected():
    with pytest.raises(ValueError, match='ROS_DOMAIN_ID 300'):
        ros_env({}, domain_id=300)


def test_profile_has_big_shm_segment_and_loopback_only_udp():
    root = ET.parse(fastdds_profile_path()).getroot()
    ns = {'d': 'http://www.eprosima.com'}
    shm = root.find('.//d:transport_descriptor[d:type="SHM"]', ns)
    assert int(shm.find('d:segment_size', ns).text) >= 2 * 640 * 480 * 3 * 4  # several stereo pairs
    udp = root.find('.//d:transport_descriptor[d:type="UDPv4"]', ns)
    assert [a.text for a in udp.findall('.//d:address', ns)] == ['127.0.0.1']
    assert root.find('.//d:useBuiltinTransports', ns).text == 'false'


@pytest.mark.ros
def test_fast_dds_accepts_the_profile():
    # Fast DDS reports XML errors on stderr and silently falls back to defaults: catch that here.
    code = 'import rclpy; rclpy.init(); n = rclpy.create_node("probe"); n.destroy_node(); rclpy.shutdown()'
    proc = subprocess.run([sys.executable, '-c', code], env=ros_env(force_localhost=True),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert 'XMLPARSER' not in proc.stderr and 'Error' not in proc.stderr, proc.stderr
