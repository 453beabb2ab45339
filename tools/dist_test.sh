#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py args...]
# Python: $PYTHON if set, else the repository's .venv/bin/python, else python3.
set -e
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
DIR=$(cd "$(dirname "$0")" && pwd)
source "$DIR/launch.sh"
launch "$NPROC" "$DIR/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
