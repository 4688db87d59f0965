from setuptools import find_packages, setup

package_name = 'dave_cli'

setup(
    name=package_name,
    version='0.1.0',  # keep equal to package.xml
    packages=find_packages(exclude=['test', 'tests']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['dave_core', 'dave_nodes', 'setuptools'],
    zip_safe=False,
    maintainer='dave developers',
    maintainer_email='dave@example.org',
    description='The `dave` command line of the dave driving stack.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'dave = dave_cli.cli:main',
        ],
    },
)
