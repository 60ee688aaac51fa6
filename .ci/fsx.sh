#!/usr/bin/env bash
# fsx.sh - run fsx (File System eXerciser, Rust rewrite, crates.io `fsx`) on a
# file inside an already-mounted directory; random reads/writes/mmap/truncate
# with data verification after every read, reproducible from the seed.
#
# Usage: fsx.sh DIR [NUM_OPS]        (NUM_OPS default 5000)
# Exit: 0 = all operations OK; 1 = fsx reported a failure (its output tail is
# printed); 2 = usage/setup error or timeout.
# Env: FSX_SEED (default 1), FSX_TIMEOUT (s, default 600), FSX_VERSION
#      (default 0.3.2), FSX_FLEN (max file size, default 262144),
#      FSX_WEIGHTS: space-separated op=weight overrides of the table below, e.g.
#        FSX_WEIGHTS="mapread=0 mapwrite=0 invalidate=0"   (no mmap, direct_io)
#        FSX_WEIGHTS="posix_fallocate=5 punch_hole=5 copy_file_range=5"
#      FSX_ARTIFACTS (dir for fsx.toml/fsx.log/.fsxgood; default mktemp),
#      FSX_VERBOSE=1 (fsx -v: log every op; needed to see which op panicked).
# fsx-rs has no zero-range/insert-range/collapse-range ops (those exist only in
# the xfstests C fsx); fallocate-family ops here are posix_fallocate, punch_hole.
set -euo pipefail

die() { echo "fsx.sh: $*" >&2; exit 2; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $0 DIR [NUM_OPS]"
DIR=$(cd "$1" && pwd -P) || die "cannot enter $1"
NUM_OPS=${2:-5000}
case $NUM_OPS in '' | *[!0-9]*) die "NUM_OPS must be a positive integer" ;; esac
[ "$NUM_OPS" -gt 0 ] || die "NUM_OPS must be > 0"
SEED=${FSX_SEED:-1}
TIMEOUT=${FSX_TIMEOUT:-600}
VERSION=${FSX_VERSION:-0.3.2}
FLEN=${FSX_FLEN:-262144}

export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v fsx >/dev/null 2>&1; then
  echo "fsx.sh: installing fsx $VERSION (takes ~1 min)" >&2
  cargo install fsx --version "$VERSION" --locked >&2 ||
    cargo install fsx --version "$VERSION" >&2 ||
    die "cargo install fsx failed"
fi

# Op weights (relative frequencies).  Note: in a config file, unspecified
# mapread/mapwrite/read/write/truncate default to 10 and the rest to 0, so all
# are written out explicitly.  fsx's built-in defaults (no -f) are
# read/write/mapread/mapwrite/truncate = 1 each, everything else 0.
declare -A W=(
  [read]=10 [write]=10 [mapread]=10 [mapwrite]=10 [truncate]=10
  [close_open]=2 [fsync]=1 [fdatasync]=1 [invalidate]=1
  [sendfile]=2 [posix_fadvise]=1
  # off by default: llmfs implements no fallocate modes / copy_file_range yet
  [posix_fallocate]=0 [punch_hole]=0 [copy_file_range]=0
)
for kv in ${FSX_WEIGHTS:-}; do
  k=${kv%%=*}; v=${kv#*=}
  [ -n "${W[$k]+x}" ] || die "unknown op '$k' in FSX_WEIGHTS (known: ${!W[*]})"
  [[ $v =~ ^[0-9]+([.][0-9]+)?$ ]] || die "bad weight '$kv' in FSX_WEIGHTS"
  W[$k]=$v
done

ART=${FSX_ARTIFACTS:-$(mktemp -d /tmp/fsx.XXXXXX)}
mkdir -p "$ART"
CONF=$ART/fsx.toml
{
  echo "flen = $FLEN"
  echo "[weights]"
  for k in $(printf '%s\n' "${!W[@]}" | sort); do
    v=${W[$k]}; [[ $v == *.* ]] || v=$v.0   # toml: weights must be floats
    echo "$k = $v"
  done
} >"$CONF"
enabled=$(for k in $(printf '%s\n' "${!W[@]}" | sort); do
  [ "${W[$k]}" != 0 ] && printf '%s=%s ' "$k" "${W[$k]}"; done; true)

FILE=$DIR/fsx.$SEED.$$.file
LOG=$ART/fsx.log
# shellcheck disable=SC2329  # invoked via trap
cleanup() { set +e; rm -f "$FILE"; }
trap cleanup EXIT
trap 'exit 2' INT TERM HUP

echo "fsx.sh: fsx -N $NUM_OPS -S $SEED on $FILE (ops: ${enabled% })"
start=$(date +%s)
rc=0
( cd "$ART" && exec timeout -k 30 "$TIMEOUT" env RUST_BACKTRACE=1 \
    fsx ${FSX_VERBOSE:+-v} -N "$NUM_OPS" -S "$SEED" -f "$CONF" -P "$ART" "$FILE" ) >"$LOG" 2>&1 </dev/null || rc=$?
elapsed=$(( $(date +%s) - start ))

if [ "$rc" -eq 0 ] && grep -q 'All operations completed A-OK' "$LOG"; then
  echo "fsx: $NUM_OPS operations passed in ${elapsed}s (seed $SEED)"
  exit 0
fi
cp "$FILE" "$ART/" 2>/dev/null || true   # the bad file, next to *.fsxgood
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "fsx: TIMEOUT after ${TIMEOUT}s (seed $SEED); output tail:" >&2
  tail -n 20 "$LOG" >&2
  exit 2
fi
# rc 1 = data/size miscompare (fsx prints the diff then its last 1024 ops);
# rc 101 = Rust panic, usually an unexpected syscall error (unwrap on Err).
echo "fsx: FAILED rc=$rc after ${elapsed}s (seed $SEED, $NUM_OPS ops); reproduce with:" >&2
echo "  fsx -N $NUM_OPS -S $SEED -f $CONF -P $ART FILE   (artifacts in $ART)" >&2
if grep -q 'LOG DUMP' "$LOG"; then
  echo "--- fsx diagnosis ---" >&2
  sed -n '1,/LOG DUMP/p' "$LOG" | head -n 20 >&2
  echo "--- last operations ---" >&2
else
  echo "(a panic names no op: rerun with FSX_VERBOSE=1 to log every op)" >&2
fi
tail -n 40 "$LOG" >&2
exit 1
