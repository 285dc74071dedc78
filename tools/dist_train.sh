#!/usr/bin/env bash
# Distributed training with torchrun.
#   bash tools/dist_train.sh CONFIG GPUS [train.py args...]
# Multi-node: run on every node with NNODES, NODE_RANK, MASTER_ADDR and PORT
# set. Without CUDA, the GPUS processes run on CPU (gloo, BN).
set -euo pipefail

if [ "$#" -lt 2 ]; then
    echo "usage: $0 CONFIG GPUS [train.py args...]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
# User errors before any process starts: one line, exit 2 (as train.py).
if [ ! -f "${CONFIG}" ]; then
    echo "error: config file not found: ${CONFIG}" >&2
    exit 2
fi
if ! [[ "${GPUS}" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: GPUS must be a positive integer, got '${GPUS}'" >&2
    exit 2
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON=${PYTHON:-python}

PYTHONPATH="${REPO_ROOT}${PYTHONPATH:+:${PYTHONPATH}}" \
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} \
"${PYTHON}" -m torch.distributed.run \
    --nnodes="${NNODES}" \
    --node_rank="${NODE_RANK}" \
    --master_addr="${MASTER_ADDR}" \
    --nproc_per_node="${GPUS}" \
    --master_port="${PORT}" \
    "${REPO_ROOT}/tools/train.py" \
    "${CONFIG}" \
    --launcher pytorch "${@:3}"
