#!/bin/bash
# Ablations of retrain-1 on /work/runs/r11's data: --dagger-share 0 and --relabel (share 0.5); rollouts on dagger-2's seeds.
set -u
R=/work/runs/r11; G=/work/main/.venv/bin/gato-ros
export MUJOCO_GL=egl PYOPENGL_PLATFORM=egl ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
common="--data $R/data/demos $R/data/dagger-1 --init $R/init --steps 1000 --preset tiny --context 51 --prompt-prob 0 --action-inputs slot --label-sigma 0.02 --aux-weight 1.0 --patch-aux-weight 1.0 --batch-size 32 --lr 0.0005 --checkpoint-every 500 --no-progress --threads 2 --warmup 100 --resume"
for name in share0 relabel; do
  case $name in share0) extra="--dagger-share 0";; relabel) extra="--dagger-share 0.5 --relabel";; esac
  s=$(date +%s); $G train $common --out /work/runs/abl/$name $extra > /work/runs/abl/$name.train.log 2>&1; echo "$name train rc=$? $(( $(date +%s)-s )) s"
  s=$(date +%s)
  $G dagger --robot ur5e --checkpoint /work/runs/abl/$name --episodes 40 --seed 3020000 --out /work/runs/abl/$name-rollouts --max-time 20.0 --json > /work/runs/abl/$name.r0.json 2>/work/runs/abl/$name.r0.err &
  $G dagger --robot ur5e --checkpoint /work/runs/abl/$name --episodes 40 --seed 3020040 --out /work/runs/abl/$name-rollouts --max-time 20.0 --json > /work/runs/abl/$name.r1.json 2>/work/runs/abl/$name.r1.err
  wait; echo "$name rollouts $(( $(date +%s)-s )) s"
done
echo done
