from setuptools import find_packages, setup

package_name = 'dave_models'

setup(
    name=package_name,
    version='0.1.0',  # keep equal to package.xml
    packages=find_packages(exclude=['test', 'tests']),
    package_data={},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['numpy', 'onnx', 'onnxruntime', 'setuptools'],
    zip_safe=False,
    maintainer='dave developers',
    maintainer_email='dave@example.org',
    description='dave networks: definitions, training, ONNX export; ships the trained ONNX models.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            
        ],
    },
)
