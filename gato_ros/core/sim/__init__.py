"""Embedded MuJoCo block-stacking simulation (no ROS): scene, task, scripted expert and the closed-loop runner."""

from gato_ros.core.sim.expert import ExpertConfig, ScriptedExpert
from gato_ros.core.sim.runner import (EpisodeResult, RunnerConfig, SimObservation, StepRecord, make_safety_filter,
                                      run_episode)
from gato_ros.core.sim.scene import CAMERA_NAMES, SimConfig
from gato_ros.core.sim.stacking import BlockPose, SimState, StackingSim
from gato_ros.core.sim.task import BLOCK_COLORS, TaskStatus

__all__ = ['BLOCK_COLORS', 'CAMERA_NAMES', 'BlockPose', 'EpisodeResult', 'ExpertConfig', 'RunnerConfig',
           'ScriptedExpert', 'SimConfig', 'SimObservation', 'SimState', 'StackingSim', 'StepRecord', 'TaskStatus',
           'make_safety_filter', 'run_episode']
