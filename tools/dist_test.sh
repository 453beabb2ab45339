#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py args...]
set -e
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
PORT=${PORT:-29500}
DIR=$(cd "$(dirname "$0")" && pwd)
PYTHONPATH="$DIR/..:$PYTHONPATH" python -m torch.distributed.run \
    --nnodes=1 --node_rank=0 --master_addr=127.0.0.1 --master_port="$PORT" \
    --nproc_per_node="$NPROC" "$DIR/test.py" "$CONFIG" "$CHECKPOINT" \
    --launcher pytorch "$@"
