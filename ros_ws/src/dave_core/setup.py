from setuptools import find_packages, setup

package_name = 'dave_core'

setup(
    name=package_name,
    version='0.1.0',  # keep equal to package.xml
    packages=find_packages(exclude=['test', 'tests']),
    package_data={'dave_core': ['config/*.xml']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['numpy', 'pyyaml', 'opencv-python-headless', 'onnxruntime', 'rosbags', 'setuptools'],
    zip_safe=False,
    maintainer='dave developers',
    maintainer_email='dave@example.org',
    description='ROS-free core of dave: stereo sync, command safety, ONNX runner, model contract, recording format, launch runner.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
        ],
    },
)
