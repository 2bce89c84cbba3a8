#!/usr/bin/env bash
# CUDA validation in one go (issue 9): the gpu-marked tests, the demo, a short training run at
# the paper's input with resume, and the training/model benchmarks side by side with MONAI.
# Every step has its own time limit and writes into OUT (default ./cuda-validation), so a
# step that fails or runs out of time does not lose the others' results.
#
#   bash benchmarks/cuda_validation.sh [OUT]
#
# Needs: a CUDA GPU, torch, and (for the MONAI columns) monai importable. Runs from a source
# checkout without installing (PYTHONPATH=src).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-cuda-validation}}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
work="$(mktemp -d)"
status=0

step() {  # step NAME SECONDS command...
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  echo "=== $name (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc $((SECONDS - start))s" | tee -a "$OUT/steps.txt"
  tail -n 15 "$OUT/$name.log"
  [ "$rc" -eq 0 ] || status=1
}

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"
  python3 -c "import monai; print('monai', monai.__version__)" || echo "monai not importable"
  nproc
} >"$OUT/environment.txt" 2>&1
cat "$OUT/environment.txt"

step gpu_tests 120 python3 -m pytest -p no:cacheprovider -q -rs -s -m gpu \
  tests/test_gpu.py tests/test_metrics_inputs.py

step demo 90 python3 -m resnet3d.cli demo --out "$work/demo" --no-progress
cp "$work/demo/demo-summary.json" "$OUT/demo-summary.json" 2>/dev/null

# A short training run at the paper's input: 3 x 4 x 512 x 512, batch 32, with the CUDA
# defaults (bf16 autocast, channels_last_3d, cudnn.benchmark); then resume from last.pt for
# one more epoch. torch.compile in training is timed by the benchmark below.
step phantom512 45 python3 -m resnet3d.cli phantom "$work/p512" --patients 24 --size 512 \
  --slices 16 20 --scans 1 1 --no-progress
step train512 90 python3 -m resnet3d.cli train --data "$work/p512" --out-dir "$work/run512" \
  --model resnet18 --depth 4 --size 512 --batch-size 32 --epochs 2 \
  --fractions 0.8 0.1 0.1 --no-progress
step resume512 60 python3 -m resnet3d.cli train --data "$work/p512" --out-dir "$work/run512" \
  --model resnet18 --depth 4 --size 512 --batch-size 32 --epochs 3 \
  --fractions 0.8 0.1 0.1 --no-progress --resume auto
cp "$work/run512/log.csv" "$OUT/train512-log.csv" 2>/dev/null

# Training steps (forward + backward) of resnet18 at the paper input, batch 32, per fast-path
# option, side by side with MONAI's identical network; peak memory and FLOP/s.
step bench_resnet18_paper 165 python3 -m resnet3d.cli bench models --device cuda \
  --models resnet18 --modes train --batch 32 --input 3x4x512x512 \
  --variants fp32 bf16 bf16+cl bf16+cl+compile default --libraries resnet3d monai \
  --out "$OUT" --name bench-resnet18-paper-cuda

# Thin-depth folding (issue 13): resnet18 training and inference at the paper input, batch 32,
# bf16 + channels_last_3d, with the fold (auto), without it (+conv3d) and MONAI. Target:
# training samples/s at least 2x MONAI's (391 samples/s on an H100 before the fold).
step bench_fold_paper 120 python3 -m resnet3d.cli bench models --device cuda \
  --models resnet18 --modes train forward --batch 32 --input 3x4x512x512 \
  --variants bf16+cl bf16+cl+conv3d --libraries resnet3d monai --no-flops \
  --out "$OUT" --name bench-fold-paper-cuda

rm -rf "$work"
echo "done: status $status"
exit $status
