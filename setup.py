from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

package_name = 'gato_ros'


def checkpoint_folders():
    """One data_files entry per committed checkpoint: share/gato_ros/checkpoints/<name>/, files kept apart."""
    return [(f'share/{package_name}/{folder.as_posix()}', sorted(str(f) for f in folder.iterdir() if f.is_file()))
            for folder in sorted(Path('checkpoints').glob('*/')) if folder.is_dir()]


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*', 'bench']),
    package_data={'gato_ros': ['core/tokenizer/assets/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
        ('share/' + package_name + '/config/robots', glob('config/robots/*.yaml')),
        ('share/' + package_name + '/urdf', glob('urdf/*.urdf')),
        ('share/' + package_name + '/rviz', glob('rviz/*.rviz')),
        *checkpoint_folders(),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='gato_ros developers',
    maintainer_email='gato-ros@example.com',
    description='Gato-style generalist transformer policy for ROS 2 robot arms',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'gato-ros = gato_ros.cli:main',
            'policy_node = gato_ros.ros.nodes.policy_node:main',
            'safety_controller_node = gato_ros.ros.nodes.safety_controller_node:main',
            'sim_node = gato_ros.ros.nodes.sim_node:main',
        ],
    },
)
