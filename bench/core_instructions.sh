#!/usr/bin/env bash
# Instructions the filesystem core runs per small file, by request kind,
# counted by valgrind's callgrind (examples/core_ops.rs, no FUSE). On
# this machine timings move several-fold between runs; an instruction
# count moves by a fraction of a percent, so it compares two builds of
# the metadata path where a timing cannot (it does not count what the
# kernel or a cache miss costs: a figure to set beside a timing, not
# instead of one).
#
#   bench/core_instructions.sh CORE_OPS [CORE_OPS ...]
#
# Each CORE_OPS is a built target/release/examples/core_ops (of the
# builds compared, copied aside). Prints a TSV line per build and
# request kind: instructions per file. FILES (default 3000) files of
# BYTES (default 1024) bytes; PHASES (default "create flush unlink")
# the core's methods counted (`Fs::<phase>`, callees included). The
# forget of the kernel's reference after an unlink leaves the inode's
# rows to the next write transaction, so an unlink's count holds the
# deletion of the file unlinked before it. NO_STAT=1 leaves core_ops's
# stat pass out (examples/core_ops.rs).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bench/core_instructions.sh CORE_OPS [CORE_OPS ...]" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
files=${FILES:-3000}
bytes=${BYTES:-1024}
phases=${PHASES:-create flush unlink}
work=$(mktemp -d /var/tmp/core-instructions.XXXXXX)
trap 'rm -rf "$work"' EXIT
printf 'build\tphase\tinstructions_per_file\n'
for phase in $phases; do
  for bin in "$@"; do
    rm -rf "$work/store"
    mkdir "$work/store"
    if ! valgrind --tool=callgrind --callgrind-out-file="$work/out" \
      --toggle-collect="*Fs*::$phase" "$bin" "$work/store" "$files" "$bytes" \
      >/dev/null 2>"$work/err"; then
      cat "$work/err" >&2
      exit 1
    fi
    total=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/err")
    [ -n "$total" ] || { echo "no count from valgrind for $bin $phase" >&2; exit 1; }
    printf '%s\t%s\t%s\n' "$bin" "$phase" "$((total / files))"
  done
done
