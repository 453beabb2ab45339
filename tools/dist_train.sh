#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG NPROC [train.py args...]
# Works on GPUs (nccl) and on CPU-only machines (gloo).
# Python: $PYTHON if set, else the repository's .venv/bin/python, else python3.
set -e
CONFIG=$1
NPROC=$2
shift 2
DIR=$(cd "$(dirname "$0")" && pwd)
source "$DIR/launch.sh"
launch "$NPROC" "$DIR/train.py" "$CONFIG" --launcher pytorch "$@"
