#!/usr/bin/env bash
# Shared by the dist_*.sh launchers (sourced, not run):
#   source "$(dirname "$0")/dist_launch.sh"
#   torchrun_tool NPROC TOOL NLEAD [tool args...]
# starts TOOL (a path under tools/) with torchrun on this node, with the
# repository on PYTHONPATH and "--launcher pytorch" after the first NLEAD
# tool arguments (the positional ones, as mmseg's launchers place it). Multi-node: set
# NNODES, NODE_RANK, MASTER_ADDR and PORT on every node. PYTHON picks the
# interpreter, OMP_NUM_THREADS defaults to 1 per process.

torchrun_tool() {
    local nproc=$1 tool=$2 nlead=$3
    shift 3
    local repo_root
    repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    PYTHONPATH="${repo_root}${PYTHONPATH:+:${PYTHONPATH}}" \
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} \
    "${PYTHON:-python}" -m torch.distributed.run \
        --nnodes="${NNODES:-1}" \
        --node_rank="${NODE_RANK:-0}" \
        --master_addr="${MASTER_ADDR:-127.0.0.1}" \
        --nproc_per_node="${nproc}" \
        --master_port="${PORT:-${DEFAULT_PORT:-29500}}" \
        "${repo_root}/tools/${tool}" \
        "${@:1:nlead}" --launcher pytorch "${@:nlead+1}"
}
