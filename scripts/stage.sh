#!/usr/bin/env bash
# Run one pipeline stage with the options every stage understands, built from the environment
# the Makefile exports (KEYWORD, BUILD, QUICK, CONFIG, SET, NPROC) by train/stagecli.py -- never
# from text pasted into a shell line, so a value with quotes, `;` or `$(...)` in it is only ever
# an argument.
#
#   scripts/stage.sh MODULE [EXTRA ARGS...]      e.g. scripts/stage.sh train.dataset
set -euo pipefail
exec .venv/bin/python -m train.stagecli "$@"
