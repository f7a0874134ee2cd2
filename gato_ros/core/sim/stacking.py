"""StackingSim: the block-stacking scene driven like a real arm (joint position commands + gripper 0..1).

No clock and no ROS: callers pass durations in and read sim time out, so the same object runs in the
expert/evaluation loop (as fast as it computes) and inside sim_node (paced to real time).
"""

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from gato_ros.core.observation import Observer
from gato_ros.core.robots import load_profile, tool_yaw
from gato_ros.core.sim.scene import ROBOT_CONTYPE, SimConfig, build_model
from gato_ros.core.sim.task import BLOCK_COLORS, TaskStatus, cube_yaw, sample_block_xy, stack_reason


@dataclass(frozen=True)
class BlockPose:
    position: np.ndarray    # (3,) centre, base frame (m)
    quaternion: np.ndarray  # (4,) w, x, y, z

    @property
    def yaw(self) -> float:
        """Yaw of the side faces in [-pi/4, pi/4)."""
        return cube_yaw(self.quaternion)


@dataclass(frozen=True)
class SimState:
    time: float                  # sim time since reset (s)
    q: np.ndarray                # arm joint positions, profile.joint_names order (rad)
    qd: np.ndarray               # arm joint velocities (rad/s)
    gripper: float               # 0 open .. 1 closed (finger travel, normalised)
    finger_q: np.ndarray         # finger joint positions, profile.gripper_joint_names order (m)
    tool_pos: np.ndarray         # (3,) fingertip centre, base frame (m)
    tool_yaw: float              # heading of the tool x axis about world z (rad)
    blocks: dict                 # colour -> BlockPose


class StackingSim:
    """Physics, task bookkeeping and cameras for one robot. Not thread-safe: one owner calls it."""

    def __init__(self, config: SimConfig = SimConfig(), profile=None):
        """`profile` (a RobotProfile) replaces load_profile(config.robot), e.g. for a modified profile."""
        profile = load_profile(config.robot) if profile is None else profile
        self.config, self.profile = config, profile
        self.model = build_model(config, profile)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.joint_names = (*profile.joint_names, *profile.gripper_joint_names)  # what /joint_states lists
        self._arm_qpos = np.array([m.joint(n).qposadr[0] for n in profile.joint_names])
        self._arm_dof = np.array([m.joint(n).dofadr[0] for n in profile.joint_names])
        self._finger_qpos = np.array([m.joint(n).qposadr[0] for n in profile.gripper_joint_names])
        self._finger_dof = np.array([m.joint(n).dofadr[0] for n in profile.gripper_joint_names])
        # Finger joints measure each finger's opening: the URDF's lower limit is closed, the upper open. The
        # gripper reading is the Observer's, as on the robot.
        self._observer = Observer(profile)
        self._finger_closed, self._finger_open = self._observer.finger_closed, self._observer.finger_open
        self._servo = np.array([m.actuator(f'servo_{n}').id for n in profile.joint_names])
        self._servo_vel = np.array([m.actuator(f'servo_vel_{n}').id for n in profile.joint_names])
        self._grip = np.array([m.actuator(f'grip_{n}').id for n in profile.gripper_joint_names])
        self._block_qpos = {c: m.joint(f'block_{c}').qposadr[0] for c in BLOCK_COLORS}
        self._block_dof = {c: m.joint(f'block_{c}').dofadr[0] for c in BLOCK_COLORS}
        self._block_geom = {c: m.geom(f'block_{c}').id for c in BLOCK_COLORS}
        self._robot_geom = m.geom_contype == ROBOT_CONTYPE
        self._tool = m.body(profile.tool_frame).id
        self._renderer = None
        self.reset(0)

    # ----------------------------------------------------------------------------------------- episode
    def reset(self, seed: int) -> None:
        """New episode: blocks at seed-determined poses, the arm at profile.ready moved by the seed's start offset
        (SimConfig.start_offset), gripper open, time 0."""
        cfg, m, d = self.config, self.model, self.data
        mujoco.mj_resetData(m, d)
        rng = np.random.default_rng(seed)
        xy = sample_block_xy(rng, len(BLOCK_COLORS), cfg.spawn_x, cfg.spawn_y, cfg.min_block_distance)
        for (color, adr), (x, y) in zip(self._block_qpos.items(), xy):
            yaw = rng.uniform(-math.pi / 4, math.pi / 4)
            z = self.profile.table_height + cfg.block_size / 2
            d.qpos[adr:adr + 7] = [x, y, z, math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]
        d.qpos[self._finger_qpos] = self._finger_open
        d.qpos[self._arm_qpos] = self._start_pose(rng.uniform(-1.0, 1.0, 3) * np.array(cfg.start_offset))
        self._command = d.qpos[self._arm_qpos].copy()
        self._gripper_command = 0.0
        self._apply_controls(self._command, np.zeros(len(self._command)))
        mujoco.mj_forward(m, d)
        self._stacked_since = None
        self._success = False
        self._status = self._evaluate_task()

    def _start_pose(self, offset: np.ndarray) -> np.ndarray:
        """Arm joints with the tool at the ready pose's tool point + offset and the ready orientation (damped least
        squares on the tool body's Jacobian, from the ready pose)."""
        m, d = self.model, self.data
        d.qpos[self._arm_qpos] = self.profile.ready
        mujoco.mj_kinematics(m, d)
        target, orientation = d.xpos[self._tool] + offset, d.xmat[self._tool].reshape(3, 3).copy()
        jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        for _ in range(100):
            rotation = d.xmat[self._tool].reshape(3, 3)
            error = np.r_[target - d.xpos[self._tool], 0.5 * np.cross(rotation.T, orientation.T).sum(axis=0)]
            if np.abs(error).max() < 1e-6:
                break
            mujoco.mj_comPos(m, d)
            mujoco.mj_jacBody(m, d, jacp, jacr, self._tool)
            jac = np.vstack([jacp, jacr])[:, self._arm_dof]
            d.qpos[self._arm_qpos] += jac.T @ np.linalg.solve(jac @ jac.T + 1e-6 * np.eye(6), error)
            mujoco.mj_kinematics(m, d)
        else:
            raise ValueError(f'start offset {offset.round(3).tolist()} m: no arm pose reaches it')
        return d.qpos[self._arm_qpos].copy()

    def step(self, arm_position_command, gripper_command: float, duration: float) -> None:
        """Advance `duration` seconds (>= one physics step) toward the joint position command.

        The servo reference ramps from the previous command to this one over `duration`, with the matching
        velocity feed-forward: what a real arm's interpolating position interface does with streamed targets.
        """
        command = np.asarray(arm_position_command, dtype=np.float64)
        if command.shape != self._command.shape:
            raise ValueError(f'arm_position_command has shape {command.shape}, '
                             f'expected {self._command.shape} for joints {self.profile.joint_names}')
        if not np.all(np.isfinite(command)):
            raise ValueError(f'arm_position_command is not finite: {command.tolist()}')
        if not math.isfinite(gripper_command):
            raise ValueError(f'gripper_command is not finite: {gripper_command}')
        if not duration > 0:
            raise ValueError(f'duration must be > 0 s, got {duration}')
        substeps = max(1, round(duration / self.model.opt.timestep))
        start, self._command = self._command, command
        self._gripper_command = min(max(float(gripper_command), 0.0), 1.0)
        velocity = (command - start) / (substeps * self.model.opt.timestep)
        for k in range(1, substeps + 1):
            self._apply_controls(start + (command - start) * (k / substeps), velocity)
            mujoco.mj_step(self.model, self.data)
        self._status = self._evaluate_task()

    def _apply_controls(self, position, velocity) -> None:
        ctrl = self.data.ctrl
        ctrl[self._servo], ctrl[self._servo_vel] = position, velocity
        ctrl[self._grip] = self._finger_open + self._gripper_command * (self._finger_closed - self._finger_open)

    # ----------------------------------------------------------------------------------------- readout
    @property
    def time(self) -> float:
        return float(self.data.time)

    def joint_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(q, qd) of the arm: the cheap read the 500 Hz safety loop needs."""
        return self.data.qpos[self._arm_qpos].copy(), self.data.qvel[self._arm_dof].copy()

    def all_joints(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions, velocities) of self.joint_names: arm then fingers, for /joint_states."""
        adr, dof = np.r_[self._arm_qpos, self._finger_qpos], np.r_[self._arm_dof, self._finger_dof]
        return self.data.qpos[adr].copy(), self.data.qvel[dof].copy()

    def block_pose(self, color: str) -> BlockPose:
        adr = self._block_qpos[color]
        return BlockPose(self.data.qpos[adr:adr + 3].copy(), self.data.qpos[adr + 3:adr + 7].copy())

    def state(self) -> SimState:
        d = self.data
        finger = d.qpos[self._finger_qpos].copy()
        rotation = d.xmat[self._tool].reshape(3, 3)
        q, qd = self.joint_positions()
        return SimState(
            time=self.time, q=q, qd=qd, gripper=float(self._observer.gripper(finger)), finger_q=finger,
            tool_pos=d.xpos[self._tool].copy(), tool_yaw=tool_yaw(rotation),
            blocks={c: self.block_pose(c) for c in BLOCK_COLORS})

    # ----------------------------------------------------------------------------------------- task
    def task_status(self) -> TaskStatus:
        return self._status

    def _touches_robot(self, color: str) -> bool:
        ncon = self.data.ncon
        if ncon == 0:
            return False
        geoms = np.stack([self.data.contact.geom1[:ncon], self.data.contact.geom2[:ncon]], axis=1)
        block = self._block_geom[color]
        other = np.where(geoms[:, 0] == block, geoms[:, 1], np.where(geoms[:, 1] == block, geoms[:, 0], -1))
        other = other[other >= 0]
        return bool(self._robot_geom[other].any())

    def _evaluate_task(self) -> TaskStatus:
        cfg, top = self.config, self.config.task[0]
        a, b = self.block_pose(top), self.block_pose(cfg.task[1])
        dof = self._block_dof[top]
        reason = stack_reason(a.position, a.quaternion, float(np.linalg.norm(self.data.qvel[dof:dof + 3])),
                              b.position, b.quaternion, cfg.block_size, self._touches_robot(top))
        now = self.time
        if reason:
            self._stacked_since = None
        elif self._stacked_since is None:
            self._stacked_since = now
        stacked_for = 0.0 if self._stacked_since is None else now - self._stacked_since
        self._success = self._success or (not reason and stacked_for >= cfg.success_hold)
        floor = self.profile.table_height - cfg.block_size
        failed = any(self.data.qpos[adr + 2] < floor for adr in self._block_qpos.values())
        return TaskStatus(success=self._success, stacked=not reason, stacked_for=stacked_for,
                          failed=bool(failed), reason=reason)

    # ----------------------------------------------------------------------------------------- cameras
    def render(self, data: mujoco.MjData | None = None) -> dict[str, np.ndarray]:
        """camera name -> uint8 (H, W, 3) of `data` (default: the live state; a copy lets a render thread work while
        the physics steps on). The renderer (and its GL context, bound to the calling thread) is made on first use."""
        if self._renderer is None:
            size = self.config.image_size
            self._renderer = mujoco.Renderer(self.model, size, size)
            flags = self._renderer.scene.flags
            flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False      # ~35x faster with software GL
            flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            self._scene_option = mujoco.MjvOption()
            self._scene_option.geomgroup[0] = False  # the URDF's collision geoms duplicate its visuals
        images = {}
        for name in self.config.cameras:
            self._renderer.update_scene(self.data if data is None else data, camera=name,
                                        scene_option=self._scene_option)
            images[name] = self._renderer.render()
        return images

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
