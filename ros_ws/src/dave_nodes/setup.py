from setuptools import find_packages, setup

package_name = 'dave_nodes'

setup(
    name=package_name,
    version='0.1.0',  # keep equal to package.xml
    packages=find_packages(exclude=['test', 'tests']),
    package_data={'dave_nodes': ['config/*.yaml']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['numpy', 'setuptools'],
    zip_safe=False,
    maintainer='dave developers',
    maintainer_email='dave@example.org',
    description='Thin rclpy nodes of dave: simulator bridge, steering, command arbitration, stereo camera driver.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'sim_node = dave_nodes.sim_node:main',
            'steering_node = dave_nodes.steering_node:main',
            'command_node = dave_nodes.command_node:main',
            'teleop_node = dave_nodes.teleop_node:main',
            'stereo_camera_node = dave_nodes.stereo_camera_node:main',
            'traversability_node = dave_nodes.traversability_node:main',
            'record_node = dave_nodes.record_node:main',
        ],
    },
)
