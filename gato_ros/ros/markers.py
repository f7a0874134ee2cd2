"""visualization_msgs markers for rviz (rviz/gato_ros.rviz): the tool's safety envelope from the robot profile
(workspace box, table plane) and the tool path of a proposal. Pure functions: the caller stamps and publishes."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

TABLE_THICKNESS = 0.01  # m, drawn below the table plane
TABLE_BORDER = 0.1      # m the table plane extends past the workspace box on each side
PATH_WIDTH = 0.01       # m


def base_frame(urdf_path: Path) -> str:
    """The URDF's root link: the frame of the profile's workspace and of the tool poses (pinocchio's base)."""
    robot = ET.parse(urdf_path).getroot()
    children = {joint.find('child').get('link') for joint in robot.iter('joint')}
    (root,) = [link.get('name') for link in robot.iter('link') if link.get('name') not in children]
    return root


def _points(xyz) -> list[Point]:
    return [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in np.asarray(xyz, dtype=float)]


def envelope(profile, frame: str) -> MarkerArray:
    """Workspace box (12 edges) and table plane: where the safety filter lets the tool go."""
    lo, hi = profile.workspace_min, profile.workspace_max
    corners = {c: np.where(np.array(c, dtype=bool), hi, lo) for c in itertools.product((0, 1), repeat=3)}
    edges = [(a, b) for a, b in itertools.combinations(corners, 2) if sum(x != y for x, y in zip(a, b)) == 1]
    box = Marker(ns='workspace', id=0, type=Marker.LINE_LIST, action=Marker.ADD,
                 points=_points([corners[c] for edge in edges for c in edge]),
                 color=ColorRGBA(r=1.0, g=0.8, b=0.0, a=1.0))
    box.scale.x = 0.005
    table = Marker(ns='table', id=0, type=Marker.CUBE, action=Marker.ADD, color=ColorRGBA(r=0.6, g=0.6, b=0.6, a=0.5))
    table.pose.position = Point(x=float(lo[0] + hi[0]) / 2, y=float(lo[1] + hi[1]) / 2,
                                z=profile.table_height - TABLE_THICKNESS / 2)
    table.pose.orientation.w = 1.0
    table.scale.x, table.scale.y = float(hi[0] - lo[0]) + 2 * TABLE_BORDER, float(hi[1] - lo[1]) + 2 * TABLE_BORDER
    table.scale.z = TABLE_THICKNESS
    for marker in (box, table):
        marker.header.frame_id = frame
        marker.frame_locked = True
    return MarkerArray(markers=[box, table])


def tool_path(positions, frame: str) -> Marker:
    """LINE_STRIP through the tool positions (N, 3) of a proposal; no positions (a hold) deletes the path."""
    marker = Marker(ns='tool_path', id=0, color=ColorRGBA(r=0.1, g=0.9, b=0.2, a=1.0))
    marker.header.frame_id = frame
    if len(positions) < 2:
        marker.action = Marker.DELETE
        return marker
    marker.type, marker.action, marker.points = Marker.LINE_STRIP, Marker.ADD, _points(positions)
    marker.pose.orientation.w = 1.0
    marker.scale.x = PATH_WIDTH
    return marker
