"""The MuJoCo scene: the robot's URDF composed with a table, three blocks, cameras and lights.

The robot comes from urdf/ through MjSpec (no hand-written copy), so the simulated arm, the pinocchio kinematics
and rviz all read the same file. Arm joints are driven like a real servo running a forward position controller:
a PD law with velocity feed-forward (one position and one velocity actuator per joint) on top of gravity
compensation, with gains set from each joint's inertia at the ready pose so every joint gets the same bandwidth.
"""

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from gato_ros.core.sim.task import BLOCK_COLORS

# Camera name -> (position, look-at point), base frame (m). "Front" = across the table, facing the robot.
# Both frame the block spawn area and the carry height tightly (CAMERA_FOVY): at 64x64 a 5 cm block is
# ~8 px wide, twice what a wide view gives, which is what lets a small policy localise it.
CAMERAS = {
    'front_left': ((1.0, 0.35, 0.55), (0.52, 0.0, 0.10)),
    'front_right': ((1.0, -0.35, 0.55), (0.52, 0.0, 0.10)),
}
CAMERA_FOVY = 36.0  # vertical field of view (degrees)
# Cameras on the tool: name -> (position, look-at point, image-up direction), tool frame (z out of the gripper,
# fingers closing along y). 'wrist' sits 6 cm beside the gripper, 8 cm behind the fingertips, and looks past them:
# over a block the fingers and the block fill the image, ~3 mm per pixel at 64x64, where the front cameras give
# ~7 mm -- a grasp needs ~1 cm.
TOOL_CAMERAS = {
    'wrist': ((-0.06, 0.0, -0.08), (0.0, 0.0, 0.05), (1.0, 0.0, 0.0)),
}
TOOL_CAMERA_FOVY = 70.0
CAMERA_NAMES = (*CAMERAS, *TOOL_CAMERAS)
# Collision bits: robot geoms touch the world (table, blocks) but not each other; the arm's primitive
# links overlap at the joints, and a real controller does not stop for self-contact either.
ROBOT_CONTYPE, _WORLD_CONTYPE = 2, 1
_WORLD_CONAFFINITY = ROBOT_CONTYPE | _WORLD_CONTYPE
_SCENE_GROUP = 2  # visible in renders; group 0 (the URDF's collision duplicates of its visuals) is hidden


@dataclass(frozen=True)
class SimConfig:
    robot: str = 'ur5e'                   # robot profile name or YAML path (gato_ros.core.robots.load_profile)
    image_size: int = 64                  # camera width = height (px), 16..1024
    cameras: tuple[str, ...] = ('front_left', 'front_right')  # non-empty subset of CAMERA_NAMES
    physics_hz: float = 500.0             # physics rate (Hz), 100..5000; timestep = 1 / physics_hz
    task: tuple[str, str] = ('red', 'blue')  # stack task[0] on task[1]; two different BLOCK_COLORS
    block_size: float = 0.05              # cube edge (m), 0.02..0.1
    block_mass: float = 0.1               # kg, 0.01..1
    friction: float = 1.0                 # sliding friction of blocks and fingers, 0.3..3
    spawn_x: tuple[float, float] = (0.40, 0.65)   # block spawn range in x (m, base frame)
    spawn_y: tuple[float, float] = (-0.20, 0.20)  # block spawn range in y (m)
    min_block_distance: float = 0.10      # minimum centre distance between spawned blocks (m), 0..0.3
    servo_bandwidth_hz: float = 10.0      # natural frequency of each arm joint's position servo (Hz), 1..50
    armature: float = 0.1                 # reflected rotor inertia added to each arm joint (kg m^2), 0..5
    grip_force: float = 20.0              # force limit of each finger (N), 1..200
    success_hold: float = 1.0             # seconds block A must rest on block B for success, 0..10
    # Half-ranges (m) of the seed's uniform offset of the arm's start from the ready pose's tool point, tool still
    # pointing down; each 0..0.15. From one fixed start, the distance travelled told a policy where the block was
    # (closed loop: it kept going the way it had started); a varied start makes it look.
    start_offset: tuple[float, float, float] = (0.1, 0.1, 0.04)

    def __post_init__(self):
        def check(field, ok, allowed):
            if not ok:
                raise ValueError(f'SimConfig.{field}={getattr(self, field)!r} is invalid; allowed: {allowed}')
        check('image_size', isinstance(self.image_size, int) and 16 <= self.image_size <= 1024, 'int 16..1024')
        check('cameras', len(self.cameras) > 0 and len(set(self.cameras)) == len(self.cameras)
              and set(self.cameras) <= set(CAMERA_NAMES), f'distinct names from {sorted(CAMERA_NAMES)}')
        check('physics_hz', 100 <= self.physics_hz <= 5000, '100..5000')
        check('task', len(self.task) == 2 and self.task[0] != self.task[1] and set(self.task) <= set(BLOCK_COLORS),
              f'two different colours from {sorted(BLOCK_COLORS)}')
        check('block_size', 0.02 <= self.block_size <= 0.1, '0.02..0.1')
        check('block_mass', 0.01 <= self.block_mass <= 1.0, '0.01..1')
        check('friction', 0.3 <= self.friction <= 3.0, '0.3..3')
        for field in ('spawn_x', 'spawn_y'):
            lo, hi = getattr(self, field)
            check(field, -2.0 <= lo < hi <= 2.0, 'increasing (lo, hi) within -2..2')
        check('min_block_distance', 0 <= self.min_block_distance <= 0.3, '0..0.3')
        check('servo_bandwidth_hz', 1 <= self.servo_bandwidth_hz <= 50, '1..50')
        check('armature', 0 <= self.armature <= 5, '0..5')
        check('grip_force', 1 <= self.grip_force <= 200, '1..200')
        check('success_hold', 0 <= self.success_hold <= 10, '0..10')
        check('start_offset', len(self.start_offset) == 3 and all(0 <= v <= 0.15 for v in self.start_offset),
              '(x, y, z), each 0..0.15')

    @property
    def timestep(self) -> float:
        return 1.0 / self.physics_hz


def _look_at(position, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Quaternion of a MuJoCo camera (looks along its -z, y up) at `position` looking at `target`, the image's up
    as close to `up` as the view allows (all in the parent body's frame)."""
    back = np.subtract(position, target)
    back /= np.linalg.norm(back)
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.column_stack([right, up, back]).ravel())
    return quat


def _robot_spec(profile, config: SimConfig) -> mujoco.MjSpec:
    """The URDF as an MjSpec, prepared for the scene: gravity-compensated links, armature, contacts, friction."""
    robot = mujoco.MjSpec.from_file(str(profile.urdf_path))
    robot.compiler.fusestatic = False  # keeps the massless "tool" body the fingertip centre is read from
    names = {joint.name for joint in robot.joints}
    for name in (*profile.joint_names, *profile.gripper_joint_names):
        if name not in names:
            raise ValueError(f'{profile.urdf_path}: joint {name!r} of profile {profile.name!r} is not in the URDF')
    for name in profile.joint_names:
        robot.joint(name).armature = config.armature
    for body in robot.bodies:
        body.gravcomp = 1.0  # the real arm's controller compensates gravity; the servo only tracks
        finger = any(joint.name in profile.gripper_joint_names for joint in body.joints)
        for geom in body.geoms:
            if geom.contype:  # collision geoms; the URDF's visual geoms have contype 0 and stay out of physics
                geom.contype, geom.conaffinity = ROBOT_CONTYPE, _WORLD_CONTYPE
                if finger:
                    geom.condim = 4  # torsional friction keeps a pinched block from spinning
                    geom.friction = [config.friction, 0.01, 0.0001]
    return robot


def _add_world(spec: mujoco.MjSpec, config: SimConfig, table_height: float) -> None:
    """Table, floor, lights, cameras and the three free blocks (placed by StackingSim.reset)."""
    world = spec.worldbody
    common = dict(contype=_WORLD_CONTYPE, conaffinity=_WORLD_CONAFFINITY, group=_SCENE_GROUP)
    world.add_geom(name='table', type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.6, 0.65, 0.02],
                   pos=[0.35, 0.0, table_height - 0.02], rgba=[0.55, 0.45, 0.35, 1], **common)
    world.add_geom(name='floor', type=mujoco.mjtGeom.mjGEOM_PLANE, size=[3, 3, 0.1],
                   pos=[0, 0, table_height - 0.75], rgba=[0.3, 0.3, 0.32, 1], **common)
    world.add_light(name='sun', type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL, pos=[0.5, 0, 2.0],
                    dir=[-0.2, 0.1, -1.0], castshadow=False, diffuse=[0.7, 0.7, 0.7], ambient=[0.3, 0.3, 0.3])
    for name in config.cameras:
        if name not in CAMERAS:
            continue  # on the tool (build_model)
        position, target = CAMERAS[name]
        world.add_camera(name=name, pos=position, quat=_look_at(position, target), fovy=CAMERA_FOVY)
    half = config.block_size / 2
    for color, rgba in BLOCK_COLORS.items():
        body = world.add_body(name=f'block_{color}', pos=[0.5, 0.0, table_height + half])
        body.add_freejoint(name=f'block_{color}')
        body.add_geom(name=f'block_{color}', type=mujoco.mjtGeom.mjGEOM_BOX, size=[half] * 3, rgba=rgba,
                      mass=config.block_mass, condim=4, friction=[config.friction, 0.01, 0.0001], **common)


def _add_actuators(spec: mujoco.MjSpec, profile, config: SimConfig) -> None:
    """Per arm joint a position and a velocity actuator (gains set in _tune_servos); a force-limited finger servo."""
    for name in profile.joint_names:
        servo = spec.add_actuator(name=f'servo_{name}', target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        servo.set_to_position(kp=1.0)
        servo.ctrllimited = mujoco.mjtLimited.mjLIMITED_FALSE
        feed = spec.add_actuator(name=f'servo_vel_{name}', target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        feed.set_to_velocity(kv=1.0)
    for name in profile.gripper_joint_names:
        finger = spec.add_actuator(name=f'grip_{name}', target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        finger.set_to_position(kp=2000.0, dampratio=1.0)
        finger.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        finger.forcerange = [-config.grip_force, config.grip_force]


def _tune_servos(model: mujoco.MjModel, profile, config: SimConfig) -> None:
    """Critically damped PD gains from each arm joint's inertia at the ready pose: the same bandwidth everywhere."""
    data = mujoco.MjData(model)
    for name, value in zip(profile.joint_names, profile.ready):
        data.qpos[model.joint(name).qposadr[0]] = value
    mujoco.mj_forward(model, data)
    inertia = np.zeros((model.nv, model.nv))
    mujoco.mj_fullM(model, data, inertia)
    omega = 2 * math.pi * config.servo_bandwidth_hz
    for name in profile.joint_names:
        dof = model.joint(name).dofadr[0]
        kp, kv = inertia[dof, dof] * omega ** 2, 2.0 * inertia[dof, dof] * omega
        servo, feed = model.actuator(f'servo_{name}').id, model.actuator(f'servo_vel_{name}').id
        model.actuator_gainprm[servo, 0], model.actuator_biasprm[servo, 1] = kp, -kp
        model.actuator_gainprm[feed, 0], model.actuator_biasprm[feed, 2] = kv, -kv


class CameraProjections:
    """The cameras' projections at given arm joint positions: call with q (T, n) -> camera name -> (T, 3, 4)
    matrices P projecting a base-frame point [x, y, z, 1] to (u*w, v*w, w), with (u, v) in pixels of the
    config.image_size image (u right, v down, origin at the top-left corner). Kinematics only, no rendering: an
    ideal pinhole with fy = fx = (H/2) / tan(fovy/2). A front camera's P is the same at every q; the wrist's moves."""

    def __init__(self, config: SimConfig, profile):
        self.config, self.model = config, build_model(config, profile)
        self.data = mujoco.MjData(self.model)
        self._qpos = [self.model.joint(name).qposadr[0] for name in profile.joint_names]
        size = config.image_size
        # Camera frame (x right, y up, looking along -z) -> pixels: u = f x / -z + W/2, v = -f y / -z + H/2.
        self._intrinsics = {}
        for name in config.cameras:
            f = (size / 2.0) / math.tan(math.radians(float(self.model.cam_fovy[self.model.camera(name).id])) / 2.0)
            self._intrinsics[name] = np.array([[f, 0.0, -size / 2.0], [0.0, -f, -size / 2.0], [0.0, 0.0, -1.0]])

    def __call__(self, q: np.ndarray) -> dict[str, np.ndarray]:
        model, data = self.model, self.data
        cams = {name: model.camera(name).id for name in self.config.cameras}
        out = {name: np.empty((len(q), 3, 4)) for name in cams}
        for t, positions in enumerate(np.asarray(q, dtype=float)):
            data.qpos[self._qpos] = positions
            mujoco.mj_kinematics(model, data)
            mujoco.mj_camlight(model, data)
            for name, cam in cams.items():
                rotation = data.cam_xmat[cam].reshape(3, 3)      # columns: camera x (right), y (up), z (backwards)
                world_to_camera = np.c_[rotation.T, -rotation.T @ data.cam_xpos[cam]]
                out[name][t] = self._intrinsics[name] @ world_to_camera
        return out


def build_model(config: SimConfig, profile) -> mujoco.MjModel:
    """Compile the stacking scene for `profile` (a gato_ros.core.robots.RobotProfile)."""
    spec = _robot_spec(profile, config)  # the scene is composed into the URDF's spec: names stay the URDF's
    spec.modelname = f'stacking_{profile.name}'
    spec.option.timestep = config.timestep
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST  # stiff servos stay stable at 500 Hz
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10.0  # stiffer friction: pinched blocks do not creep out of the fingers
    spec.visual.global_.offwidth = spec.visual.global_.offheight = max(config.image_size, 64)
    spec.visual.quality.shadowsize = 0
    _add_world(spec, config, profile.table_height)
    for name in config.cameras:
        if name in TOOL_CAMERAS:
            position, target, up = TOOL_CAMERAS[name]
            spec.body(profile.tool_frame).add_camera(name=name, pos=position, quat=_look_at(position, target, up),
                                                     fovy=TOOL_CAMERA_FOVY)
    _add_actuators(spec, profile, config)
    model = spec.compile()
    _tune_servos(model, profile, config)
    return model
