#!/usr/bin/env bash
# Multi-GPU training with torchrun and DistributedDataParallel.
#
# One machine, all its GPUs (batch 32 per GPU; the learning rate is the paper's, for an
# effective batch of 32 x GPUs consider --lr scaled accordingly):
#
#   torchrun --standalone --nproc_per_node=gpu -m resnet3d.cli train \
#       --data ROOT --out-dir runs/ccii-ddp --model resnet18 --depth 4 --size 512 \
#       --batch-size 32 --sync-bn --resume auto
#
# Several machines (run on each; NODE_RANK 0..N-1, MASTER the address of node 0):
#
#   torchrun --nnodes=2 --node_rank=$NODE_RANK --nproc_per_node=8 \
#       --rdzv_backend=c10d --rdzv_endpoint=$MASTER:29500 -m resnet3d.cli train \
#       --data ROOT --out-dir runs/ccii-ddp --batch-size 32 --sync-bn --resume auto
#
# Rank 0 writes the checkpoints and the log; every rank reads the same split.json. The same
# command with --nproc_per_node=1 (or plain `resnet3d train`) trains in one process.
#
# Each command prints the device, precision and memory layout it chose (rank 0 only);
# --precision auto|bf16|fp16|fp32 changes the precision (default auto).
#
# --tiny [--precision P]: two CPU processes (gloo) on a synthetic phantom, one epoch, in a
# temporary folder that is removed on exit (what CI runs).
set -euo pipefail

if [ "${1:-}" != "--tiny" ]; then
  sed -n '2,24p' "$0"
  exit 0
fi
shift  # the rest (e.g. --precision fp32) goes to resnet3d train

work="$(mktemp -d "${TMPDIR:-/tmp}/resnet3d-multigpu-XXXXXX")"
trap 'rm -rf "$work"' EXIT
python - "$work" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "examples")
from _tiny import tiny_dataset
tiny_dataset(Path(sys.argv[1]) / "data")
PY
OMP_NUM_THREADS=1 python -m torch.distributed.run --standalone --nproc_per_node=2 \
  -m resnet3d.cli train --data "$work/data" --out-dir "$work/run" --model resnet10 \
  --size 32 --epochs 1 --batch-size 2 --fractions 0.34 0.33 0.33 --no-progress --device cpu \
  "$@"
test -f "$work/run/last.pt"
echo "multi-process smoke run finished: rank 0 wrote last.pt (its temporary folder is removed)"
