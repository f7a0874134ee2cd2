"""Message <-> core conversions: every encoding, row padding, bad sizes, joint order by name, trajectories."""

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image, JointState

from gato_ros.core.safety import Proposal
from gato_ros.ros import conversions

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(48, 80, 3), dtype=np.uint8)  # H=48, W=80
UR5E = ('shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint', 'wrist_1_joint', 'wrist_2_joint',
        'wrist_3_joint')
TO_ENCODING = {'rgb8': None, 'bgr8': cv2.COLOR_RGB2BGR, 'rgba8': cv2.COLOR_RGB2RGBA,
               'bgra8': cv2.COLOR_RGB2BGRA, 'mono8': cv2.COLOR_RGB2GRAY}


def image_msg(rgb, encoding, padding=0):
    pixels = rgb if TO_ENCODING[encoding] is None else cv2.cvtColor(rgb, TO_ENCODING[encoding])
    rows = pixels.reshape(rgb.shape[0], -1)
    padded = np.concatenate([rows, np.full((rows.shape[0], padding), 77, np.uint8)], axis=1)
    return Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, step=padded.shape[1],
                 data=padded.tobytes())


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8'])
@pytest.mark.parametrize('padding', [0, 5])
def test_color_encodings_give_the_same_rgb(encoding, padding):
    out = conversions.image_to_rgb(image_msg(RGB, encoding, padding), size=RGB.shape[0])
    expected = cv2.resize(RGB, (48, 48), interpolation=cv2.INTER_AREA)
    assert out.dtype == np.uint8 and out.shape == (48, 48, 3)
    np.testing.assert_array_equal(out, expected)


def test_mono8_becomes_grey_rgb_and_padding_is_ignored():
    out = conversions.image_to_rgb(image_msg(RGB, 'mono8', padding=3), size=16)
    grey = cv2.resize(cv2.cvtColor(RGB, cv2.COLOR_RGB2GRAY), (16, 16), interpolation=cv2.INTER_AREA)
    assert out.shape == (16, 16, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], grey)


def test_no_resize_when_already_at_model_size():
    square = RGB[:, :48]
    np.testing.assert_array_equal(conversions.image_to_rgb(image_msg(square, 'rgb8'), 48), square)


@pytest.mark.parametrize('mutate, message', [
    (lambda m: setattr(m, 'encoding', '16UC1'), "unsupported image encoding '16UC1'"),
    (lambda m: setattr(m, 'step', m.width * 3 - 1), 'step 239 is smaller than width*channels = 80*3'),
    (lambda m: setattr(m, 'data', bytes(m.data)[:-1]), 'expected step*height = 240*48 = 11520'),
    (lambda m: setattr(m, 'height', 0), 'empty image'),
])
def test_malformed_images_are_rejected_naming_the_problem(mutate, message):
    msg = image_msg(RGB, 'rgb8')
    mutate(msg)
    with pytest.raises(ValueError, match=message.replace('*', r'\*')):
        conversions.image_to_rgb(msg, 32)


@pytest.mark.parametrize('ext, fmt', [('.png', 'png'), ('.jpg', 'jpeg'), ('.png', 'rgb8; png compressed bgr8')])
def test_compressed_images(ext, fmt):
    ok, data = cv2.imencode(ext, cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))
    out = conversions.camera_to_rgb(CompressedImage(format=fmt, data=data.tobytes()), 32)
    expected = cv2.resize(RGB, (32, 32), interpolation=cv2.INTER_AREA)
    tolerance = 0 if ext == '.png' else 40  # jpeg is lossy (and this image is noise)
    assert out.shape == (32, 32, 3)
    assert np.abs(out.astype(int) - expected).mean() <= tolerance / 2
    if ext == '.png':
        np.testing.assert_array_equal(out, expected)


def test_compressed_garbage_and_unknown_formats_are_rejected():
    with pytest.raises(ValueError, match='could not decode 4 bytes'):
        conversions.compressed_to_rgb(CompressedImage(format='jpeg', data=b'nope'), 32)
    with pytest.raises(ValueError, match="unsupported compressed image format 'tiff'"):
        conversions.compressed_to_rgb(CompressedImage(format='tiff', data=b'\0'), 32)


def test_joint_state_is_reordered_by_name_and_extra_joints_ignored():
    names = list(reversed(UR5E)) + ['ur5e_finger_left_joint']
    msg = JointState(name=names, position=[float(i) for i in range(7)], velocity=[10.0 + i for i in range(7)])
    q, qd = conversions.joint_state_to_arrays(msg, UR5E)
    np.testing.assert_array_equal(q, [5, 4, 3, 2, 1, 0])
    np.testing.assert_array_equal(qd, [15, 14, 13, 12, 11, 10])


def test_joint_state_without_velocity_gives_zeros():
    q, qd = conversions.joint_state_to_arrays(JointState(name=list(UR5E), position=[0.5] * 6), UR5E)
    np.testing.assert_array_equal(qd, np.zeros(6))


@pytest.mark.parametrize('msg, message', [
    (JointState(name=list(UR5E[:5]), position=[0.0] * 5), r"missing joint\(s\) \['wrist_3_joint'\]"),
    (JointState(name=list(UR5E), position=[0.0] * 5), '6 names but 5 positions'),
    (JointState(name=list(UR5E), position=[0.0] * 6, velocity=[0.0] * 3), '6 names but 3 velocities'),
    (JointState(name=list(UR5E), position=[0.0, float('nan')] + [0.0] * 4),
     r"non-finite position for joint\(s\) \['shoulder_lift_joint'\]"),
    (JointState(name=list(UR5E), position=[0.0] * 6, velocity=[float('inf')] + [0.0] * 5),
     r"non-finite velocity for joint\(s\) \['shoulder_pan_joint'\]"),
])
def test_bad_joint_states_are_rejected_naming_the_joint(msg, message):
    with pytest.raises(ValueError, match=message):
        conversions.joint_state_to_arrays(msg, UR5E)


def test_proposal_round_trips_through_joint_trajectory():
    stamp = 1_700_000_000.123456789
    proposal = Proposal(stamp=stamp, times=stamp + np.array([0.01, 0.11, 0.21]),
                        positions=RNG.normal(size=(3, 6)))
    msg = conversions.proposal_to_trajectory(proposal, UR5E)
    assert list(msg.joint_names) == list(UR5E)
    assert abs(conversions.to_seconds(msg.header.stamp) - stamp) < 1e-6
    assert abs(conversions.to_seconds(msg.points[1].time_from_start) - 0.11) < 1e-6  # float64 epoch seconds
    back = conversions.trajectory_to_proposal(msg, UR5E)
    np.testing.assert_allclose(back.times, proposal.times, atol=1e-6)
    np.testing.assert_allclose(back.positions, proposal.positions)


def test_trajectory_joint_order_follows_names_and_missing_joints_fail():
    proposal = Proposal(stamp=5.0, times=[5.0, 5.1], positions=np.arange(12.0).reshape(2, 6))
    msg = conversions.proposal_to_trajectory(proposal, UR5E)
    msg.joint_names = list(reversed(msg.joint_names))
    np.testing.assert_array_equal(conversions.trajectory_to_proposal(msg, UR5E).positions[0], [5, 4, 3, 2, 1, 0])
    msg.joint_names = msg.joint_names[:5] + ['other']
    with pytest.raises(ValueError, match=r"missing joint\(s\) \['shoulder_pan_joint'\]"):
        conversions.trajectory_to_proposal(msg, UR5E)


def test_commands():
    assert list(conversions.float64_array(np.array([1, 2.5])).data) == [1.0, 2.5]
    msg = conversions.trajectory_command(UR5E, np.zeros(6), np.ones(6), 0.004)
    assert list(msg.joint_names) == list(UR5E) and len(msg.points) == 1
    assert list(msg.points[0].velocities) == [1.0] * 6
    assert msg.points[0].time_from_start.nanosec == 4_000_000
    assert msg.header.stamp.sec == 0  # 'start now' for joint_trajectory_controller


def test_time_conversions_are_exact_to_the_nanosecond():
    t = conversions.to_time_msg(12.999999999)
    assert (t.sec, t.nanosec) == (12, 999_999_999)
    assert conversions.to_seconds(conversions.to_duration_msg(0.25)) == 0.25
