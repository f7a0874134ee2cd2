"""`gato-ros recipe --out DIR [--export checkpoints/gato-stack] ...`: from nothing to an exported, evaluated
block-stacking checkpoint in one sitting on a 2-core CPU (docs/learning.md).

Stages, each a `gato-ros` command run as its own process (two at a time where the work splits by seed), each
resumable, so re-running the same command after an interruption continues where it stopped:

  record    scripted-expert demonstrations (two processes)      DIR/data/demos
  heldout   held-out demonstrations for the diagnosis            DIR/data/heldout
  train     behaviour cloning, the recipe's loss                 DIR/train (none with --init CKPT: the rounds
            start from CKPT, e.g. more rounds for a shipped checkpoint)
  dagger-K  the policy drives, the expert labels (two processes) DIR/data/dagger-K; then retrain DIR/train-K on
            everything so far
  diagnose  teacher-forced error vs trivial baselines            DIR/diagnose.json
  export    bf16 copy                                            --export
  eval      closed loop on held-out seeds (two processes), of the export where there is one: DIR/eval-{0,1}/eval.json;
            then the export's model card

DIR/recipe.json holds every stage's command, wall time and result.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from gato_ros.commands import arguments

HELDOUT_SEED = 900_000
CAMERAS = ('front_left', 'wrist')
EVAL_SEED = 1_000_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', type=Path, default=Path('runs/recipe-stack'), help='work directory')
    parser.add_argument('--export', type=Path, default=None, help='export the final checkpoint here (e.g. '
                        'checkpoints/gato-stack) with its model card')
    parser.add_argument('--robot', default='ur5e', type=arguments.robot, help='robot profile (default ur5e)')
    parser.add_argument('--episodes', type=arguments.positive_int, default=1000, help='demonstrations (default 1000)')
    parser.add_argument('--cameras', type=arguments.camera, nargs='+', default=list(CAMERAS),
                        help=f"observation cameras (default {' '.join(CAMERAS)}: the wrist camera is what lets the "
                             'policy place its grasp, docs/learning.md)')
    parser.add_argument('--steps', type=arguments.positive_int, default=3000,
                        help='training steps of the first model (default 3000)')
    parser.add_argument('--batch-size', type=arguments.positive_int, default=32, help='sequences per step (default 32)')
    parser.add_argument('--lr', type=float, default=1e-3, help='peak learning rate (default 1e-3)')
    parser.add_argument('--dagger-rounds', type=int, default=3, help='DAgger rounds (default 3)')
    parser.add_argument('--dagger-episodes', type=arguments.positive_int, default=80,
                        help='rollouts per DAgger round (default 80)')
    parser.add_argument('--dagger-share', type=arguments.fraction, default=0.5,
                        help='share of the retraining windows drawn from the DAgger rollouts (default 0.5; 0: '
                             'every timestep once, where they are a few percent beside the demonstrations)')
    parser.add_argument('--dagger-steps', type=arguments.positive_int, default=1500,
                        help='retraining steps per round (default 1500)')
    parser.add_argument('--relabel', action='store_true',
                        help='retrain on every state relabelled by the current expert from its recorded state '
                             '(train --relabel; default: the actions as recorded, which DAgger labelled online)')
    parser.add_argument('--heldout-episodes', type=arguments.positive_int, default=20,
                        help='held-out demonstrations for the diagnosis (default 20)')
    parser.add_argument('--eval-episodes', type=arguments.positive_int, default=100,
                        help='closed-loop evaluation episodes (default 100)')
    parser.add_argument('--max-time', type=float, default=30.0,
                        help='evaluation episode limit, sim seconds (DAgger rollouts: at most 20; default 30)')
    parser.add_argument('--threads', type=arguments.positive_int, default=2,
                        help='torch threads for training (default 2)')
    parser.add_argument('--init', type=arguments.checkpoint, default=None,
                        help='continue from this checkpoint instead of training the first model (no train stage): '
                             'the DAgger rounds start from its weights, e.g. more rounds for a shipped checkpoint')


class Stages:
    """Runs the stages, timing each and keeping the record in DIR/recipe.json (stages already done are skipped)."""

    def __init__(self, out: Path):
        self.out, self.path = out, out / 'recipe.json'
        self.record = json.loads(self.path.read_text()) if self.path.is_file() else {'stages': {}}

    def run(self, name: str, commands: list[list[str]]) -> list[str]:
        """Run the `gato-ros` argument lists in parallel; returns their stdout. A stage that completed is skipped."""
        done = self.record['stages'].get(name)
        if done and done.get('complete'):
            print(f'[recipe] {name}: done before ({done["seconds"]} s), skipped', flush=True)
            return done['stdout']
        print(f'[recipe] {name}: ' + ' & '.join('gato-ros ' + ' '.join(c) for c in commands), flush=True)
        start = time.monotonic()
        procs = [subprocess.Popen([sys.executable, '-m', 'gato_ros.cli', *c], stdout=subprocess.PIPE, text=True)
                 for c in commands]
        outputs = [p.communicate()[0] for p in procs]
        failed = [' '.join(c) for c, p in zip(commands, procs) if p.returncode]
        if failed:
            raise SystemExit(f'recipe stage {name} failed: gato-ros {failed[0]} (exit status non-zero); fix it and '
                             'run the recipe again: finished stages are kept')
        seconds = round(time.monotonic() - start, 1)
        self.record['stages'][name] = {'commands': ['gato-ros ' + ' '.join(c) for c in commands],
                                       'seconds': seconds, 'complete': True,
                                       'stdout': [o.strip().splitlines()[-1] if o.strip() else '' for o in outputs]}
        self.path.write_text(json.dumps(self.record, indent=2) + '\n')
        print(f'[recipe] {name}: {seconds} s', flush=True)
        return self.record['stages'][name]['stdout']


def train_options(args, lr: float) -> list[str]:
    """The recipe's training settings (docs/learning.md has the ablation behind each one)."""
    return ['--preset', 'tiny', '--context', '51', '--prompt-prob', '0', '--action-inputs', 'slot',
            '--label-sigma', '0.02',
            '--aux-weight', '1.0', '--patch-aux-weight', '1.0', '--batch-size', str(args.batch_size),
            '--lr', str(lr),
            '--checkpoint-every', '500', '--no-progress']


def merged_eval(outputs: list[str]) -> dict:
    """One summary of the parallel evaluation processes (their episodes added up; latency p99 the worse)."""
    parts = [json.loads(o) for o in outputs]
    n = sum(p['episodes'] for p in parts)
    mean = lambda key: sum(p[key] * p['episodes'] for p in parts) / n  # noqa: E731
    halt = sum(p['safety_interventions']['halt_episode_fraction'] * p['episodes'] for p in parts) / n
    steps = [p['mean_steps'] * p['episodes'] for p in parts]
    phases = list(parts[0]['furthest_phase'])
    return {'episodes': n, 'success_rate': mean('success_rate'), 'halt_episode_fraction': halt,
            'first_seeds': [p['first_seed'] for p in parts], 'deadline_miss_rate': mean('deadline_miss_rate'),
            'latency_ms_p50': max(p['latency']['p50_ms'] for p in parts),
            'latency_ms_p99': max(p['latency']['p99_ms'] for p in parts),
            'furthest_phase': {k: sum(p['furthest_phase'][k] for p in parts) for k in parts[0]['furthest_phase']},
            'closest_within_1cm': sum(p['closest_within_1cm'] for p in parts),
            'gripper_closings_mean': mean('gripper_closings_mean'),
            'step_share_by_phase': {k: round(sum(p['step_share_by_phase'][k] * w for p, w in zip(parts, steps))
                                             / sum(steps), 4) for k in phases},
            'parts': parts}


def check_init(args: argparse.Namespace) -> dict:
    """The --init checkpoint's config, refused before anything is recorded when it was trained for another robot or
    other cameras than the rollouts and retraining would use (the policy's own checks: one line, exit 2)."""
    from gato_ros.core.policy import check_robot
    from gato_ros.core.policy_spec import PolicySpec
    from gato_ros.core.robots import load_profile

    config = json.loads((args.init / 'config.json').read_text())
    spec = PolicySpec.from_checkpoint_config(config)
    source = f'--init {args.init}'
    check_robot(spec, load_profile(args.robot), source)
    spec.check_setting('cameras', args.cameras, source)
    return config


def run(args: argparse.Namespace) -> int:
    if args.dagger_rounds < 0 or not args.max_time > 0:
        raise SystemExit(f'--dagger-rounds must be >= 0 and --max-time > 0, got {args.dagger_rounds} and '
                         f'{args.max_time}')
    init_config = None if args.init is None else check_init(args)
    out = args.out
    data = out / 'data'
    out.mkdir(parents=True, exist_ok=True)
    stages = Stages(out)
    robot = ['--robot', args.robot]
    cameras = ['--cameras', *args.cameras]
    half = args.episodes // 2
    stages.run('record', [['record', *robot, *cameras, '--episodes', str(n), '--seed', str(seed), '--out',
                           str(data / 'demos'), '--json']
                          for n, seed in ((half, 0), (args.episodes - half, half)) if n])
    stages.run('heldout', [['record', *robot, *cameras, '--episodes', str(args.heldout_episodes), '--seed',
                            str(HELDOUT_SEED), '--out', str(data / 'heldout'), '--json']])
    threads = ['--threads', str(args.threads)]
    if args.init is None:
        stages.run('train', [['train', '--data', str(data / 'demos'), '--out', str(out / 'train'), '--steps',
                              str(args.steps), '--warmup', '200', *train_options(args, args.lr), *threads,
                              '--resume']])
    else:
        stages.record['init'] = {'checkpoint': str(args.init), 'git_revision': init_config.get('git_revision')}
    checkpoint, dirs = args.init or out / 'train', [str(data / 'demos')]
    for k in range(1, args.dagger_rounds + 1):
        rollout_dir = data / f'dagger-{k}'
        n = args.dagger_episodes
        seeds = (3_000_000 + 10_000 * k, 3_000_000 + 10_000 * k + n // 2)
        stages.run(f'dagger-{k}', [['dagger', *robot, '--checkpoint', str(checkpoint), '--episodes', str(m),
                                    '--seed', str(s), '--out', str(rollout_dir), '--max-time',
                                    str(min(args.max_time, 20.0)), '--json']
                                   for m, s in ((n // 2, seeds[0]), (n - n // 2, seeds[1])) if m])
        dirs.append(str(rollout_dir))
        stages.run(f'retrain-{k}', [['train', '--data', *dirs, '--out', str(out / f'train-{k}'), '--init',
                                     str(checkpoint), '--steps', str(args.dagger_steps),
                                     *train_options(args, args.lr / 2),
                                     '--dagger-share', str(args.dagger_share),
                                     *threads, '--warmup', '100', *(['--relabel'] if args.relabel else []),
                                     '--resume']])
        checkpoint = out / f'train-{k}'
    stages.run('diagnose', [['diagnose', '--checkpoint', str(checkpoint), '--data', str(data / 'heldout'),
                             '--episodes', str(args.heldout_episodes), '--json']])
    if args.export is not None:   # evaluated as shipped: the bf16 export, not the fp32 training checkpoint
        stages.run('export', [['export', '--checkpoint', str(checkpoint), '--out', str(args.export)]])
        checkpoint = args.export
    half_eval = args.eval_episodes // 2
    outputs = stages.run('eval', [['eval', *robot, '--checkpoint', str(checkpoint), '--episodes', str(n),
                                   '--seed', str(seed), '--out', str(out / f'eval-{i}'), '--max-time',
                                   str(args.max_time), '--json']
                                  for i, (n, seed) in enumerate(((half_eval, EVAL_SEED),
                                                                 (args.eval_episodes - half_eval,
                                                                  EVAL_SEED + half_eval))) if n])
    summary = merged_eval(outputs)
    (out / 'eval.json').write_text(json.dumps(summary, indent=2) + '\n')
    if args.export is not None:
        from gato_ros.core.model_card import write_model_card
        write_model_card(args.export, stages.record, summary)
    total = sum(s['seconds'] for s in stages.record['stages'].values())
    print(f"[recipe] success {summary['success_rate']:.0%} over {summary['episodes']} held-out episodes; stages "
          f'{total:.0f} s in all; record in {stages.path}')
    print(json.dumps({'success_rate': summary['success_rate'], 'episodes': summary['episodes'],
                      'seconds': {k: v['seconds'] for k, v in stages.record['stages'].items()}}))
    return 0
