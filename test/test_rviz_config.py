"""rviz/gato_ros.rviz shows what the nodes publish: every display's topic is published, with the display's
message type, by policy_node or sim_node running here over real rclpy (or is robot_state_publisher's
/robot_description), and its fixed frame is the UR5e URDF's root, the frame of the markers."""

from pathlib import Path

import pytest
import yaml
from rclpy.parameter import Parameter

from gato_ros.core.robots import load_profile
from gato_ros.ros import markers
from gato_ros.ros.nodes.policy_node import PolicyNode
from gato_ros.ros.nodes.sim_node import SimNode

CONFIG = Path(__file__).resolve().parents[1] / 'rviz' / 'gato_ros.rviz'
DISPLAY_TYPES = {'rviz_default_plugins/MarkerArray': 'visualization_msgs/msg/MarkerArray',
                 'rviz_default_plugins/Marker': 'visualization_msgs/msg/Marker',
                 'rviz_default_plugins/Image': 'sensor_msgs/msg/Image'}


def test_rviz_displays_match_the_published_topics(context):
    config = yaml.safe_load(CONFIG.read_text())['Visualization Manager']
    assert config['Global Options']['Fixed Frame'] == markers.base_frame(load_profile('ur5e').urdf_path)
    nodes = [PolicyNode(context=context, parameter_overrides=[Parameter('allow_random_weights', value=True)]),
             SimNode(context=context)]
    try:
        published = {}
        for node in nodes:
            for topic, types in node.get_publisher_names_and_types_by_node(node.get_name(), node.get_namespace()):
                published.setdefault(topic, set()).update(types)
        shown = {d['Class']: d for d in config['Displays']}
        assert shown['rviz_default_plugins/RobotModel']['Description Topic']['Value'] == '/robot_description'
        for display_class, msg_type in DISPLAY_TYPES.items():
            topic = shown[display_class]['Topic']
            assert msg_type in published.get(topic['Value'], set()), (display_class, topic['Value'], published)
        envelope = shown['rviz_default_plugins/MarkerArray']['Topic']
        assert envelope['Durability Policy'] == 'Transient Local'  # latched: published once at start-up
        namespaces = {m.ns for m in markers.envelope(nodes[0].profile, 'base_link').markers} | {'tool_path'}
        assert set(shown['rviz_default_plugins/MarkerArray']['Namespaces']) | \
            set(shown['rviz_default_plugins/Marker']['Namespaces']) == namespaces
    finally:
        for node in nodes:
            node.destroy_node()
