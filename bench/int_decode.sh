#!/usr/bin/env bash
# Issue 13's speed targets in one run: llm decode of the integer default
# model against the float model it was quantised from (models/float-d192l3),
# and against the integer model's own full pass (the encoder), alternating,
# on the same 256 KiB (the first 128 KiB of lcet10.txt and of bible.txt,
# four 64 KiB blocks).
#
#   bench/int_decode.sh [ROUNDS] > OUT.tsv
#
# Each round runs, in this order: float decode, integer decode, integer
# full pass (`llmfs compress --codec llm`), every one with `--workers 2`
# (one model thread per worker), and checks that both decodes give back the
# input. Prints one TSV row per run (wall and CPU seconds), then per round
# float decode / integer decode and integer decode / integer full pass,
# each in wall time, as speeds (the larger, the faster the integer decode).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${LLMFS:-target/release/llmfs}")
rounds=${1:-6}
corpora=$(realpath "${LLMFS_CORPORA:-../shared/corpora}")
float_model=$(realpath models/float-d192l3/model.onnx)
work=$(mktemp -d /tmp/llmfs-int-decode.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
{ head -c 131072 "$corpora/cantrbry/lcet10.txt"; head -c 131072 "$corpora/large/bible.txt"; } > s.txt
"$bin" compress --codec llm --model "$float_model" s.txt s-float.llm 2>/dev/null
"$bin" compress --codec llm s.txt s-int.llm 2>/dev/null

# Runs "$@" and prints "wall<TAB>cpu" in seconds.
timed() {
  /usr/bin/time -f "%e	%U %S" "$@" 2>&1 >/dev/null | tail -1 | awk -F'\t' '{split($2, c, " "); printf "%s\t%.2f\n", $1, c[1] + c[2]}'
}

printf 'round\trun\twall_s\tcpu_s\n'
declare -A wall
for r in $(seq 1 "$rounds"); do
  t=$(timed "$bin" decompress --workers 2 --model "$float_model" s-float.llm out-float.txt)
  cmp -s out-float.txt s.txt || { echo "round $r: float decode differs" >&2; exit 1; }
  printf '%s\tfloat decode\t%s\n' "$r" "$t"; wall[$r,f]=${t%%	*}
  t=$(timed "$bin" decompress --workers 2 s-int.llm out-int.txt)
  cmp -s out-int.txt s.txt || { echo "round $r: integer decode differs" >&2; exit 1; }
  printf '%s\tinteger decode\t%s\n' "$r" "$t"; wall[$r,i]=${t%%	*}
  t=$(timed "$bin" compress --workers 2 --codec llm s.txt again.llm)
  printf '%s\tinteger full pass\t%s\n' "$r" "$t"; wall[$r,p]=${t%%	*}
done
printf '\nround\tinteger decode speed / float decode speed\tinteger decode speed / integer full pass speed\n'
for r in $(seq 1 "$rounds"); do
  awk -v r="$r" -v f="${wall[$r,f]}" -v i="${wall[$r,i]}" -v p="${wall[$r,p]}" \
    'BEGIN { printf "%s\t%.2f\t%.2f\n", r, f / i, p / i }'
done
