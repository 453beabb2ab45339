#!/usr/bin/env bash
# Shared by dist_train.sh and dist_test.sh (sourced): `launch NPROC SCRIPT ARGS...`
# runs SCRIPT on NPROC local processes with torch.distributed.run.
# Python: $PYTHON if set, else the repository's .venv/bin/python, else python3.
launch() {
    local nproc=$1 dir py
    shift
    dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    if [ -n "$PYTHON" ]; then
        py=$PYTHON
    elif [ -x "$dir/../.venv/bin/python" ]; then
        py=$dir/../.venv/bin/python
    else
        py=python3
    fi
    # a checkout (tools/ next to anomaly_plugin/) imports its own package; from an
    # installed package's .mim/tools the installed anomaly_plugin is used as it is
    local pypath=${PYTHONPATH:-}
    if [ -d "$dir/../anomaly_plugin" ]; then
        pypath="$dir/..${pypath:+:$pypath}"
    fi
    PYTHONPATH="$pypath" "$py" -m torch.distributed.run \
        --nnodes=1 --node_rank=0 --master_addr=127.0.0.1 --master_port="${PORT:-29500}" \
        --nproc_per_node="$nproc" "$@"
}
