#!/usr/bin/env bash
# Time to first byte of an archived file: `head -c 4096` on a cold block,
# per archive tier, for this build and (optionally) a base build to compare
# with, alternating the two in every round.
#
#   [TIERS="archive deep"] [LLMFS_BASE=/path/to/base/llmfs] \
#     [EARLY=--early-reads] bench/first_byte.sh [ROUNDS] [BYTES]   (EARLY: extra mount flags of this build; default none)
#
# Per tier and build: write BYTES of text through a mount (compress=off),
# unmount, `llmfs archive --tier TIER` (each build its own store: a newer
# payload version locks an older build out), then mount (a fresh daemon:
# its block cache is empty; this build with $EARLY), drop the kernel's page
# cache, time `head -c 4096 FILE` and check its bytes, unmount. The text is the start of
# bible.txt followed by world192.txt (../shared/corpora/large); BYTES
# defaults to two blocks (the second one is what the read-ahead decodes
# meanwhile, as a sequential reader's would be). With READ_BLOCK=N the
# first read is one `dd` of N bytes instead (as `cat` and `cp` read, 128
# KiB at a time), so the kernel's first read-ahead window shows. Needs root
# (drop_caches, mount).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${LLMFS:-target/release/llmfs}
base=${LLMFS_BASE:-}
early=${EARLY:-}
rounds=${1:-3}
bytes=${2:-131072}
corpora=${LLMFS_CORPORA:-../shared/corpora}
. bench/scratch.sh
scratch first-byte
cat "$corpora/large/bible.txt" "$corpora/large/world192.txt" > "$work/text"
head -c "$bytes" "$work/text" > "$work/f"
first=${READ_BLOCK:-4096}
head -c "$first" "$work/f" > "$work/head"

# seconds BUILD_BIN STORE EXTRA...: mount, time `head -c 4096` cold, unmount.
seconds() {
  local b=$1 store=$2; shift 2
  "$b" mount "$mnt" --store "$store" --compress off "$@"
  sync; echo 3 > /proc/sys/vm/drop_caches
  local t0 t1
  t0=$(date +%s.%N)
  if [ -n "${READ_BLOCK:-}" ]; then
    dd if="$mnt/f" of="$work/out" bs="$READ_BLOCK" count=1 status=none
  else
    head -c 4096 "$mnt/f" > "$work/out"
  fi
  t1=$(date +%s.%N)
  cmp -s "$work/out" "$work/head" || { echo "first_byte: $b read back differently" >&2; exit 1; }
  "$b" umount "$mnt"
  echo "$t1 - $t0" | bc -l
}

printf 'round\ttier\tbuild\tcodec_block0\tttfb_s\n'
for round in $(seq 1 "$rounds"); do
  for tier in ${TIERS:-archive deep}; do
    # Alternate which build goes first from round to round.
    builds="new"; [ -n "$base" ] && { if [ $((round % 2)) = 1 ]; then builds="base new"; else builds="new base"; fi; }
    for build in $builds; do
      if [ "$build" = base ]; then b=$base; else b=$bin; fi
      # Each build writes and archives its own store: a newer payload
      # version locks an older build out of the store that holds it.
      store=$work/store-$tier-$round-$build
      "$b" mount "$mnt" --store "$store" --compress off
      cp "$work/f" "$mnt/f"
      "$b" umount "$mnt"
      "$b" archive --tier "$tier" "$store" > /dev/null
      codec=$(python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); r=c.execute("SELECT codec, hex(substr(record, 21, 1)) FROM blocks WHERE idx=0").fetchone(); print({2:"llm-v%d" % int(r[1], 16),4:"cm"}.get(r[0],"other"))' "$store/llmfs.db" 2>/dev/null || echo "?")
      if [ "$build" = base ]; then s=$(seconds "$base" "$store"); else s=$(seconds "$bin" "$store" $early); fi
      printf '%s\t%s\t%s\t%s\t%.3f\n' "$round" "$tier" "$build" "$codec" "$s"
    done
  done
done
