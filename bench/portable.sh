#!/usr/bin/env bash
# The integer (portable) default model against the float model it was
# quantised from, in the same run, alternating, on the same inputs: the
# first 128 KiB of each of the ten text files (Canterbury text, bible.txt,
# world192.txt).
#
#   bench/portable.sh [OUT_PREFIX] [REPEATS]
#
# Per model and repeat: `llmfs bench` (the full predictor as the volume
# stores it, `llmfs`, per 64 KiB block, with encode/decode KB/s on 2 workers
# and decode divided by the model's full pass); in the first repeat also
# `llmfs compress --codec llm-alone` (the transformer alone) on every sample
# file.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${LLMFS:-target/release/llmfs}
out=${1:-bench/results/$(date +%F)-portable}
reps=${2:-2}
corpora=${LLMFS_CORPORA:-../shared/corpora}
sample=$(mktemp -d /tmp/llmfs-portable.XXXXXX)
packed=$(mktemp /tmp/llmfs-portable-packed.XXXXXX)
trap 'rm -rf "$sample" "$packed"' EXIT
for f in alice29.txt asyoulik.txt cp.html fields.c grammar.lsp lcet10.txt plrabn12.txt xargs.1; do
  head -c 131072 "$corpora/cantrbry/$f" > "$sample/$f"
done
for f in bible.txt world192.txt; do
  head -c 131072 "$corpora/large/$f" > "$sample/$f"
done
declare -A models=([float]=models/float-d192l3/model.onnx [int]=models/default/model.onnx)
mkdir -p "$(dirname "$out")"
for rep in $(seq 1 "$reps"); do
  for m in float int; do
    echo "== repeat $rep, $m model" >&2
    "$bin" bench "$sample" --codecs llmfs,xz-9e --llm-max-bytes all --workers 2 \
      --model "${models[$m]}" --json --out "$out-$m-$rep" > /dev/null
    [ "$rep" = 1 ] || continue
    for f in "$sample"/*; do
      echo "$(basename "$f")"
      "$bin" compress --codec llm-alone --workers 2 --model "${models[$m]}" --json "$f" "$packed" \
        2>&1 >/dev/null | grep '^{'
    done > "$out-$m-alone.txt"
  done
done
