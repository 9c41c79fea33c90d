#!/usr/bin/env bash
# Run one pipeline stage with the options every stage understands, built from the environment
# the Makefile exports (KEYWORD, BUILD, QUICK, CONFIG, SET, NPROC) -- never from text pasted into a
# shell line, so a value with quotes, `;` or `$(...)` in it is only ever an argument.
#
#   scripts/stage.sh MODULE [EXTRA ARGS...]      e.g. scripts/stage.sh train.dataset
#
# CONFIG and SET are whitespace-separated lists (SET="train.lr=0.01 data.seed=2"); no globbing.
set -euo pipefail
set -f
module=${1:?usage: scripts/stage.sh MODULE [ARGS...]}
shift
keyword=${KEYWORD:-computer}
args=(--keyword "$keyword" --build "${BUILD:-build/$keyword}")
[ -n "${QUICK:-}" ] && args+=(--quick)
for f in ${CONFIG:-}; do args+=(--config "$f"); done
for s in ${SET:-}; do args+=(--set "$s"); done
nproc=${NPROC:-1}
case "$nproc" in
  ''|*[!0-9]*|0) echo "NPROC must be a whole number >= 1 (got '$nproc')" >&2; exit 2 ;;
esac
if [ "$nproc" -gt 1 ]; then
  cmd=(.venv/bin/torchrun --standalone "--nproc-per-node=$nproc" -m "$module" "${args[@]}" "$@")
else
  cmd=(.venv/bin/python -m "$module" "${args[@]}" "$@")
fi
printf '%q ' "${cmd[@]}" >&2
echo >&2
exec "${cmd[@]}"
