#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py args...]
# Python: $PYTHON if set, else the repository's .venv/bin/python, else python3.
set -e
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
PORT=${PORT:-29500}
DIR=$(cd "$(dirname "$0")" && pwd)
if [ -n "$PYTHON" ]; then
    PY=$PYTHON
elif [ -x "$DIR/../.venv/bin/python" ]; then
    PY=$DIR/../.venv/bin/python
else
    PY=python3
fi
PYTHONPATH="$DIR/..${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m torch.distributed.run \
    --nnodes=1 --node_rank=0 --master_addr=127.0.0.1 --master_port="$PORT" \
    --nproc_per_node="$NPROC" "$DIR/test.py" "$CONFIG" "$CHECKPOINT" \
    --launcher pytorch "$@"
