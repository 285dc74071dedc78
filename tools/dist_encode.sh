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
DEFAULT_PORT=29510
source "$(dirname "$0")/dist_launch.sh"
torchrun_tool "${GPUS}" encode_images.py 2 "${CONFIG}" "${CHECKPOINT}" "$@"
