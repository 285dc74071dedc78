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
source "$(dirname "$0")/dist_launch.sh"
torchrun_tool "${GPUS}" train.py 1 "${CONFIG}" "${@:3}"
