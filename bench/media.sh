#!/usr/bin/env bash
# Media bench (issue 18): on the raw files of bench/media/fetch.sh, bytes of
#   PNG at maximum compression (optipng -o7 on pnmtopng's output) for images,
#   FLAC -8 (whole file) for audio,
#   xz -9e and zstd -19 per 64 KiB block,
#   llmfs's media codec per 64 KiB block, and the archive tier's choice per
#   block (the smallest of media, cm, LZMA2, zstd -19, raw) (examples/media_eval.rs),
# and decode speed (KB of raw output per second, one thread) of llmfs, PNG
# (pngtopnm) and FLAC (flac -d), alternated, REPS times (min..max).
#
#   bench/media.sh [CACHE] [OUT_PREFIX]
#
# MEDIA_KIND=image or audio runs only the files of that kind.
# Writes OUT_PREFIX.tsv (one row a file) and OUT_PREFIX.md (the table).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${1:-${MEDIA_CACHE:-$HOME/.cache/llmfs-media}}
out=${2:-bench/results/$(date +%F)-media}
reps=${REPS:-3}
for t in optipng pnmtopng pngtopnm flac xz zstd; do
  command -v "$t" >/dev/null || { echo "media.sh: needs $t (apt-get install optipng netpbm flac xz-utils zstd)" >&2; exit 1; }
done
cargo build --release --example media_eval >/dev/null 2>&1
eval_bin=target/release/examples/media_eval
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

per_block() { # per_block FILE CMD... : total bytes of CMD on each 64 KiB block
  local total=0 n
  split -b 65536 -a 4 "$1" "$work/blk."
  for b in "$work"/blk.*; do
    n=$("${@:2}" < "$b" | wc -c)
    total=$((total + n))
  done
  rm -f "$work"/blk.*
  echo "$total"
}
now() { date +%s.%N; }
kbs() { python3 -c "import sys; print(f'{$1/1024/max($2,1e-9):.0f}')"; }

printf 'file\tkind\traw\tpeer\tpeer_bytes\txz_block\tzstd_block\tllmfs\tarchive\tllmfs_kbs\tpeer_kbs\n' > "$out.tsv"
while read -r name kind _src _lic _sha; do
  f=$cache/raw/$name
  [ -f "$f" ] || continue
  [ -z "${MEDIA_KIND:-}" ] || [ "$kind" = "$MEDIA_KIND" ] || continue
  raw=$(stat -c %s "$f")
  xzb=$(per_block "$f" xz -9e -c -q)
  zsb=$(per_block "$f" zstd -19 -c -q)
  if [ "$kind" = image ]; then
    peer=png
    case $name in
      *.bmp) python3 -c "from PIL import Image; Image.open('$f').save('$work/in.pnm')" ;;
      *) cp "$f" "$work/in.pnm" ;;
    esac
    pnmtopng "$work/in.pnm" > "$work/p.png" 2>/dev/null
    optipng -quiet -o7 -strip all "$work/p.png"
    peer_bytes=$(stat -c %s "$work/p.png")
    peer_dec() { pngtopnm "$work/p.png" > /dev/null; }
  else
    peer=flac
    flac -s -8 -f "$f" -o "$work/p.flac"
    peer_bytes=$(stat -c %s "$work/p.flac")
    peer_dec() { flac -s -d -c "$work/p.flac" > /dev/null; }
  fi
  lk=() pk=()
  for _ in $(seq "$reps"); do
    line=$("$eval_bin" "$f")
    lk+=("$(kbs "$raw" "$(echo "$line" | cut -d' ' -f4)")")
    t0=$(now); peer_dec; t1=$(now)
    pk+=("$(kbs "$raw" "$(python3 -c "print($t1-$t0)")")")
  done
  llmfs=$(echo "$line" | cut -d' ' -f3)
  archive=$(echo "$line" | cut -d' ' -f5)
  span() { printf '%s\n' "$@" | sort -n | sed -n '1p;$p' | paste -sd. | sed 's/\./../'; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$kind" "$raw" "$peer" "$peer_bytes" \
    "$xzb" "$zsb" "$llmfs" "$archive" "$(span "${lk[@]}")" "$(span "${pk[@]}")" >> "$out.tsv"
  echo "media.sh: $name done" >&2
done < "$cache/MANIFEST"
python3 bench/media/summary.py "$out.tsv" > "$out.md"
cat "$out.md"
