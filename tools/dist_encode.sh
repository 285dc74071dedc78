#!/usr/bin/env bash
# Encode images ahead of time with torchrun: the images are dealt
# round-robin over the processes, rank 0 writes the manifest.
#   bash tools/dist_encode.sh CONFIG CHECKPOINT GPUS IMAGES... --out STORE [args]
# Multi-node: run on every node with NNODES, NODE_RANK, MASTER_ADDR and PORT
# set. Without CUDA (or with --device cpu) the processes run on CPU.
set -euo pipefail

if [ "$#" -lt 5 ] || ! [[ "$3" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 CONFIG CHECKPOINT GPUS IMAGES... --out STORE [args]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29510}
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
    "${REPO_ROOT}/tools/encode_images.py" \
    "${CONFIG}" "${CHECKPOINT}" \
    --launcher pytorch "$@"
