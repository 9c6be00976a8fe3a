#!/usr/bin/env bash
# The GPU check, one command (fits in 8 minutes on one H200): the tests marked for CUDA, then the GPU benchmark
# (training iterations/s and peak memory at the paper's per-GPU batch, inference ms per 720p frame, and the dynamic
# depthwise convs per sample against the batch folded into conv groups, eager and compiled).
#
#   bash scripts/gpu_check.sh [OUT_DIR]     # default: $OUT if set, else gpu_check_out
#
# Writes OUT_DIR/cuda_tests.txt (pytest -m cuda), OUT_DIR/gpu_benchmark.json and OUT_DIR/gpu_benchmark.md. Exit code:
# the tests' (the benchmark records its own failures per configuration in the JSON). PYTHON picks the interpreter
# (default: .venv/bin/python when scripts/setup_env.sh made one, else python).
set -u
OUT_DIR=${1:-${OUT:-gpu_check_out}}
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd)
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi  # (as dist_train.sh)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "gpu_check: torch sees no CUDA device")' \
    || exit 2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT_DIR/nvidia_smi.csv" 2>&1 || true
# 1. the CUDA tests (about 1-2 minutes): autocast vs fp32, AMP steps, fp16 GradScaler resume, NCCL at world size 1
timeout 200 "$PY" -m pytest -m cuda -q -rs -p no:cacheprovider tests 2>&1 | tee "$OUT_DIR/cuda_tests.txt"
tests_rc=${PIPESTATUS[0]}
# 2. the benchmark (stops starting configurations after --budget seconds; the JSON is rewritten after each one)
timeout 330 "$PY" scripts/gpu_benchmark.py --out "$OUT_DIR" --budget 270 --compile-reserve 90 \
    2>&1 | tee "$OUT_DIR/gpu_benchmark.log"
echo "gpu_check: tests exit $tests_rc; benchmark exit ${PIPESTATUS[0]}; outputs in $OUT_DIR"
exit "$tests_rc"
