#!/usr/bin/env bash
# A C build on the mount: zstd's library (the copy the zstd-sys crate
# vendors, in cargo's registry once llmfs is built: 40 C files and one
# assembly file) compiled with `make -j2` (gcc -O1), archived with ar, and
# linked into a small program that runs; then an incremental build after
# touching one header-free source file (make stats every target), and a
# no-op make. On a fresh volume per round, for several llmfs builds, `plain`
# (a directory of the same disk) and `mergerfs` (Debian's mergerfs with one
# branch on it), alternated round by round, with the daemon's CPU time.
#
#   bench/build.sh [ROUNDS] BIN [BIN ...]     (root: mounts)
#
# Prints a TSV line per contender, round and step: seconds, daemon CPU
# seconds (0 for the plain directory).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench/build.sh ROUNDS BIN [BIN ...]}
shift
[ $# -ge 1 ] || { echo "usage: bench/build.sh ROUNDS BIN [BIN ...]" >&2; exit 2; }
bin=$1   # for scratch.sh's cleanup
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/zstd-sys-*/zstd/lib 2>/dev/null | head -1)
[ -n "$src" ] || { echo "build.sh: no zstd-sys sources in cargo's registry (build llmfs first)" >&2; exit 2; }
. bench/scratch.sh
. bench/contender.sh
scratch build

# The makefile and the program, written into each fresh tree.
prepare() {
  cp -r "$src" "$1/lib"
  cat > "$1/main.c" <<'EOF'
#include <stdio.h>
#include <string.h>
#include "zstd.h"
int main(void) {
  char in[4096], out[8192], back[4096];
  memset(in, 'a', sizeof in);
  size_t n = ZSTD_compress(out, sizeof out, in, sizeof in, 3);
  size_t m = ZSTD_decompress(back, sizeof back, out, n);
  printf("zstd %u: %zu -> %zu -> %zu\n", ZSTD_versionNumber(), sizeof in, n, m);
  return ZSTD_isError(m) || m != sizeof in || memcmp(in, back, m) != 0;
}
EOF
  cat > "$1/Makefile" <<'EOF'
SRCS := $(wildcard lib/common/*.c lib/compress/*.c lib/decompress/*.c)
ASMS := $(wildcard lib/decompress/*.S)
OBJS := $(SRCS:.c=.o) $(ASMS:.S=.o)
CFLAGS := -O1 -Ilib -Ilib/common -DZSTD_MULTITHREAD=0
prog: main.o libzstd.a
	$(CC) -o $@ main.o libzstd.a
libzstd.a: $(OBJS)
	$(AR) rcs $@ $^
%.o: %.S
	$(CC) -c -o $@ $<
main.o: main.c
	$(CC) $(CFLAGS) -c -o $@ $<
EOF
}

printf 'contender\tround\tstep\tseconds\tdaemon_cpu_s\n'
for round in $(seq 1 "$rounds"); do
  for b in plain "$@"; do
    contender_mount "$b"
    prepare "$target"
    sync
    contender_timed "make -j2" make -s -j2 -C "$target"
    "$target/prog" | grep -q '4096 -> .* -> 4096'
    sleep 1 # a newer mtime than the objects' at any timestamp granularity
    touch "$target/lib/common/error_private.c"
    contender_timed "make -j2 after touching one source" make -s -j2 -C "$target"
    contender_timed "make -j2 with nothing to do" make -s -j2 -C "$target"
    contender_umount "$b"
  done
done
