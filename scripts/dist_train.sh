#!/usr/bin/env bash
# Distributed training, the short form of
#   torchrun --nproc_per_node NPROC -m srconvnet_plugin.train -opt CONFIG --launcher pytorch [FLAGS...]
# usage: scripts/dist_train.sh NPROC CONFIG [--auto_resume] [--force_yml key=value ...]
# One node: NCCL on GPUs (one process per GPU), gloo on CPU. Several nodes: run it on each node with NNODES,
# NODE_RANK and MASTER_ADDR set (PORT, default 4321, must be free on the master). PYTHON defaults to ./.venv's.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 NPROC CONFIG [train flags...]" >&2
  exit 2
fi
NPROC=$1
CONFIG=$2
shift 2
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$root/.venv/bin/python" ]; then PYTHON="$root/.venv/bin/python"; else PYTHON=python; fi
fi
exec "$PYTHON" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-4321}" \
  --nproc_per_node="$NPROC" \
  -m srconvnet_plugin.train -opt "$CONFIG" --launcher pytorch "$@"
