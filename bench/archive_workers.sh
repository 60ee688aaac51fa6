#!/usr/bin/env bash
# Archival throughput on a PostgreSQL volume with one `llmfs archive`
# worker against two at once, on the same data, in the same run
# (alternating which goes first each round).
#
#   eval "$(.ci/postgres.sh)"; bench/archive_workers.sh [ROUNDS] [BYTES] [TIER]
#
# Each round and contender gets a fresh volume (its own schema in the
# database LLMFS_TEST_PG names) holding one file of BYTES of text (the start
# of bible.txt then world192.txt, ../shared/corpora/large), written through
# a mount with compress=off and unmounted; then `llmfs archive URL --tier
# TIER --no-dictionary` runs once (one worker) or twice at the same time
# (two workers, which claim blocks so that none is encoded twice), and the
# wall time until every worker has finished is taken. The archive tier
# (cm, LZMA2, zstd -19) is the fastest to measure; the deep tier adds the
# model. Prints one TSV line per run, then the ratio two/one per round.
# Needs root (mount).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${LLMFS:-target/release/llmfs}
rounds=${1:-3}
bytes=${2:-4194304}
tier=${3:-archive}
corpora=${LLMFS_CORPORA:-../shared/corpora}
url=${LLMFS_TEST_PG:?set LLMFS_TEST_PG (eval "\$(.ci/postgres.sh)")}
schemas=()
scratch_cleanup_more() {
  for s in "${schemas[@]}"; do
    psql -q "$url" -c "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1 || true
  done
}
. bench/scratch.sh
scratch workers
cat "$corpora/large/bible.txt" "$corpora/large/world192.txt" > "$work/all"
head -c "$bytes" "$work/all" > "$work/text"
sep='?'; case $url in *\?*) sep='&';; esac

# A fresh volume in schema $1 holding the text; prints its URL.
volume() {
  local v="$url${sep}schema=$1"
  schemas+=("$1")
  "$bin" mount "$mnt" --store "$v" --compress off >&2
  cp "$work/text" "$mnt/f"
  "$bin" umount "$mnt" >&2
  echo "$v"
}

# Seconds for $2 workers to take volume $1 to the tier.
archive_with() {
  local v=$1 n=$2 t0 t1 pids=()
  t0=$(date +%s.%N)
  for _ in $(seq 1 "$n"); do
    "$bin" archive "$v" --tier "$tier" --no-dictionary > "$work/out.$n.$_" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  t1=$(date +%s.%N)
  pending=$("$bin" stats --json "$v" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pending"]["raw_bytes"])')
  [ "$pending" = 0 ] || { echo "archive_workers: $pending bytes left pending" >&2; exit 1; }
  # Blocks each worker encoded, joined by "+" (they sum to the volume's
  # blocks: none is encoded twice).
  encoded=$(cat "$work"/out."$n".* | grep -o '[0-9]* encoded' | cut -d' ' -f1 | paste -sd+)
  echo "$(echo "$t1 - $t0" | bc -l) $encoded"
}

printf 'round\tworkers\tbytes\tseconds\tMB_s\tencoded_per_worker\n'
declare -A secs
for round in $(seq 1 "$rounds"); do
  order="1 2"; [ $((round % 2)) = 0 ] && order="2 1"
  for n in $order; do
    v=$(volume "bw_$$_${round}_$n")
    read -r s encoded < <(archive_with "$v" "$n")
    secs[$round.$n]=$s
    printf '%s\t%s\t%s\t%.3f\t%.3f\t%s\n' "$round" "$n" "$bytes" "$s" \
      "$(echo "$bytes / $s / 1000000" | bc -l)" "$encoded"
  done
done
echo
printf 'round\tthroughput_two_over_one\n'
for round in $(seq 1 "$rounds"); do
  printf '%s\t%.3f\n' "$round" "$(echo "${secs[$round.1]} / ${secs[$round.2]}" | bc -l)"
done
