from setuptools import find_packages, setup

package_name = 'dave_sim'

setup(
    name=package_name,
    version='0.1.0',  # keep equal to package.xml
    packages=find_packages(exclude=['test', 'tests']),
    package_data={},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['dave_core', 'numpy', 'pyyaml', 'mujoco', 'tqdm', 'setuptools'],
    zip_safe=False,
    maintainer='dave developers',
    maintainer_email='dave@example.org',
    description='dave simulator: world generator, MuJoCo backend, Gazebo SDF export, expert driver.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            
        ],
    },
)
