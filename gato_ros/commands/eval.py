"""`gato-ros eval --checkpoint PATH --robot R --episodes N [--seed S] [--prompt-task green,red] [--json]
[--out DIR]`: closed-loop evaluation (simulation + GatoPolicy + SafetyFilter) on held-out seeds. Writes
eval.json, a video of the first episode and a latency histogram to --out; with --json the summary is the
last stdout line."""

import argparse
import json
from pathlib import Path

from gato_ros.commands import arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--checkpoint', required=True, type=arguments.checkpoint,
                        help='checkpoint directory, or a training --out directory (its newest checkpoint)')
    parser.add_argument('--robot', type=arguments.robot, default='ur5e',
                        help='robot profile: ur5e, sawyer or a YAML path (default ur5e)')
    parser.add_argument('--episodes', type=arguments.positive_int, default=10, help='number of episodes (default 10)')
    parser.add_argument('--seed', type=int, default=None, help='first evaluation seed (default 1000000, held out)')
    parser.add_argument('--task', type=arguments.task_pair, default=('red', 'blue'),
                        help="'top,bottom' (default red,blue)")
    parser.add_argument('--prompt-task', type=arguments.task_pair, default=None,
                        help="condition on a successful scripted demonstration of 'top,bottom' and evaluate that "
                             'task (overrides --task)')
    parser.add_argument('--deadline-ms', type=float, default=100.0, help='policy step deadline (default 100 ms)')
    parser.add_argument('--max-time', type=float, default=30.0, help='episode limit, sim seconds (default 30)')
    parser.add_argument('--device', type=arguments.torch_device, default='cpu',
                        help='torch device for the policy: cpu, cuda, cuda:N (default cpu)')
    parser.add_argument('--threads', type=arguments.positive_int, default=1,
                        help='torch threads for the policy (default 1: evaluations run side by side, and more '
                             'threads than cores across processes ran ~20x slower here)')
    parser.add_argument('--out', type=Path, default=Path('eval'), help='output directory (default ./eval)')
    parser.add_argument('--no-video', action='store_true', help='skip the video')
    arguments.add_grip_hysteresis(parser)
    parser.add_argument('--json', action='store_true', help='print one JSON summary as the last line')


def run(args: argparse.Namespace) -> int:
    import torch

    from gato_ros.core.demonstration import demonstration_prompt_for
    from gato_ros.core.evaluation import (EVAL_SEED, FrameRecorder, PhaseProgress, evaluate, write_latency_histogram,
                                          write_video)
    from gato_ros.core.policy import GatoPolicy
    from gato_ros.core.robots import load_profile
    from gato_ros.core.sim import SimConfig
    from gato_ros.core.sim.runner import RunnerConfig

    torch.set_num_threads(args.threads)
    deadline = args.deadline_ms / 1e3
    profile = load_profile(args.robot)
    policy = GatoPolicy.from_checkpoint(args.checkpoint, profile, device=args.device, deadline_s=deadline,
                                        **arguments.grip_hysteresis(args))
    spec = policy.spec   # the observation layout and rate the checkpoint was trained on
    task = args.prompt_task or args.task
    sim_config = SimConfig(robot=args.robot, task=task, image_size=spec.image_size, cameras=spec.cameras)
    runner_config = RunnerConfig(control_hz=spec.control_hz, max_time=args.max_time, render=True)
    prompt = demonstration_prompt_for(policy, profile.name, task, sim_config) if args.prompt_task else None
    seed = EVAL_SEED if args.seed is None else args.seed
    frames = None if args.no_video else FrameRecorder()
    summary = evaluate(policy, sim_config, runner_config, args.episodes, seed, prompt, frames,
                       progress=not args.json)
    metrics = {'checkpoint': str(args.checkpoint), 'robot': profile.name, 'task': ','.join(task),
               'prompt': ','.join(args.prompt_task) if args.prompt_task else None,
               'prompt_tokens': len(prompt) if prompt is not None else 0, 'first_seed': seed,
               'device': args.device, 'grip_hysteresis': policy.grip.band, **summary.metrics(deadline)}
    args.out.mkdir(parents=True, exist_ok=True)
    files = {'histogram': write_latency_histogram(summary.latencies, deadline, args.out / 'latency_histogram.png',
                                                  f'{profile.name}, {len(summary.latencies)} policy steps')}
    if frames is not None and frames.frames:
        files['video'] = write_video(frames.frames, args.out / f'episode_seed{seed}.mp4', runner_config.control_hz)
    metrics['files'] = files
    per_episode = [{'seed': r.seed, 'success': r.success, 'steps': r.steps, 'sim_time': round(r.sim_time, 3),
                    'furthest_phase': progress.furthest.value, 'closest_xy_m': round(progress.closest_xy, 4),
                    'gripper_closings': progress.closings, 'longest_hold_steps': progress.longest_hold,
                    'phase_steps': dict(zip((p.value for p in PhaseProgress.ORDER), progress.phase_steps)),
                    'safety_statuses': r.safety_statuses, 'task_reason': r.task.reason}
                   for r, progress in zip(summary.episodes, summary.progress)]
    (args.out / 'eval.json').write_text(json.dumps({**metrics, 'per_episode': per_episode}, indent=2) + '\n')
    if not args.json:
        latency = metrics['latency']
        print(f"success {metrics['success_rate']:.0%} over {metrics['episodes']} episodes; policy step "
              f"{metrics['policy_compute_hz']} Hz (p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} "
              f"ms), deadline misses {metrics['deadline_miss_rate']:.1%}; files in {args.out}")
    print(json.dumps(metrics))
    return 0
