#!/usr/bin/env bash
# Distributed click test with torchrun: instances are sharded over the
# processes and gathered; the result equals a single-process run.
#   bash tools/dist_clicktest.sh [CONFIG] CHECKPOINT GPUS [clicktest.py args...]
#   bash tools/dist_clicktest.sh CONFIG GPUS [args...]      (random weights)
# GPUS is the first purely numeric argument. Multi-node: run on every node
# with NNODES, NODE_RANK, MASTER_ADDR and PORT set. Without CUDA the GPUS
# processes run on CPU (gloo).
set -euo pipefail

PATHS=()
while [ "$#" -gt 0 ] && ! [[ "$1" =~ ^[0-9]+$ ]]; do
    PATHS+=("$1")
    shift
done
if [ "${#PATHS[@]}" -lt 1 ] || [ "$#" -lt 1 ]; then
    echo "usage: $0 [CONFIG] CHECKPOINT GPUS [clicktest.py args...]" >&2
    exit 2
fi
GPUS=$1
shift
# User errors before any process starts: one line, exit 2 (as clicktest.py).
for path in "${PATHS[@]}"; do
    if [ ! -f "${path}" ]; then
        echo "error: file not found: ${path}" >&2
        exit 2
    fi
done
if [ "${GPUS}" -lt 1 ]; then
    echo "error: GPUS must be >= 1, got ${GPUS}" >&2
    exit 2
fi
source "$(dirname "$0")/dist_launch.sh"
torchrun_tool "${GPUS}" clicktest.py "${#PATHS[@]}" "${PATHS[@]}" "$@"
