#!/bin/bash
# ARM64 exactness, emulated: llmfs cross-built for aarch64 with ONNX
# Runtime's own aarch64 wheel (1.31.1, pinned), run under qemu-aarch64 as
# three CPU models whose int8 kernels differ in MLAS: cortex-a53 (ARMv8.0,
# no dot product), cortex-a76 (SDOT/UDOT) and max (dot product, I8MM, SVE).
# For each: the logits digest of the four integer models on ONNX Runtime
# and on the reference engine; files written natively on this x86-64 CPU
# decoded under emulation; and files written under emulation compared byte
# for byte with the native ones.
#
#   bash bench/arm64.sh [OUT_DIR]      (root; installs what it needs)
#
# Two things qemu-user needs here: the arm64 C library of dpkg's multiarch
# (mixing it with the cross toolchain's copy under /usr/aarch64-linux-gnu
# hangs the first pthread_create, so qemu runs with -L /), and an ARM
# /proc/cpuinfo (ONNX Runtime's cpuinfo library crashes on the host's x86
# one), bound over /proc/cpuinfo in a private mount namespace, listing the
# features qemu gives each CPU model.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench/results/$(date +%F)-arm64}
WORK=${ARM64_WORK:-/var/tmp/llmfs-arm64}
WHEEL=onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_aarch64.whl
WHEEL_SHA256=da05378364c44d4407e463982d2bf8d5e4cfea873283757e48beeb41df97b7f3
LIB_SHA256=8aa3b76b28c778a2b1dd660d34161adb1d508c9ccd04ff9dc80e26eca5df8467
mkdir -p "$OUT" "$WORK"

if ! dpkg -s gcc-aarch64-linux-gnu libssl-dev:arm64 libstdc++6:arm64 qemu-user >/dev/null 2>&1; then
  dpkg --add-architecture arm64
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc-aarch64-linux-gnu libc6:arm64 \
    libssl-dev:arm64 libstdc++6:arm64 qemu-user
fi
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu

if ! echo "$WHEEL_SHA256  $WORK/$WHEEL" | sha256sum -c --status 2>/dev/null; then
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
    --platform manylinux_2_28_aarch64 -d "$WORK" onnxruntime==1.31.1
  echo "$WHEEL_SHA256  $WORK/$WHEEL" | sha256sum -c
fi
(cd "$WORK" && unzip -q -o "$WHEEL" 'onnxruntime/capi/libonnxruntime.so.1.31.1')
ORT=$WORK/onnxruntime/capi/libonnxruntime.so.1.31.1
echo "$LIB_SHA256  $ORT" | sha256sum -c

CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
PKG_CONFIG_ALLOW_CROSS=1 PKG_CONFIG_PATH=/usr/lib/aarch64-linux-gnu/pkgconfig \
ORT_DYLIB_PATH=$ORT CARGO_TARGET_DIR=$WORK/target \
  cargo build -q --release --target aarch64-unknown-linux-gnu --bin llmfs
cargo build -q --release
ARM=$WORK/target/aarch64-unknown-linux-gnu/release/llmfs
NATIVE=$PWD/target/release/llmfs

# Files written natively, by the default model on this CPU's ONNX Runtime.
FILES="grammar.lsp xargs.1 fields.c"
for f in $FILES; do
  cp ../shared/corpora/cantrbry/$f "$WORK/$f"
  "$NATIVE" compress --codec llm --workers 1 "$WORK/$f" "$WORK/$f.native.llmfs" 2>/dev/null
done

# A /proc/cpuinfo for each CPU model, with the features that qemu gives it:
# ONNX Runtime picks its int8 kernels from these (a dot-product kernel on a
# CPU model without the instruction dies with SIGILL).
cpuinfo() {  # FILE PART FEATURES
  for i in 0 1; do
    printf 'processor\t: %s\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: %s\nCPU revision\t: 0\n\n' $i "$3" "$2"
  done > "$1"
}
BASE="fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"
V82="$BASE atomics fphp asimdhp asimdrdm lrcpc dcpop asimddp"
cpuinfo "$WORK/cpuinfo.cortex-a53" 0xd03 "$BASE"
cpuinfo "$WORK/cpuinfo.cortex-a76" 0xd0b "$V82"
cpuinfo "$WORK/cpuinfo.max" 0xd49 "$V82 sha3 sm3 sm4 sha512 asimdfhm sve sve2 i8mm bf16"

cat > "$WORK/inside.sh" <<INSIDE
set -u
export ORT_DYLIB_PATH=$ORT
for cpu in cortex-a53 cortex-a76 max; do
  mount --bind "$WORK/cpuinfo.\$cpu" /proc/cpuinfo
  Q="timeout 600 qemu-aarch64 -L / -cpu \$cpu $ARM"
  for m in default/model.onnx test-int/model.onnx test-int/random.onnx test-int/random-extreme.onnx; do
    for d in cpu reference; do
      echo "== \$cpu \$d \$m"; \$Q model-check --json --device \$d --model models/\$m 2>&1
    done
  done
  for f in $FILES; do
    \$Q decompress --workers 1 "$WORK/\$f.native.llmfs" "$WORK/\$f.\$cpu" 2>&1
    cmp "$WORK/\$f.\$cpu" "$WORK/\$f" && echo "\$cpu: \$f written natively decodes: EQUAL" || echo "\$cpu: \$f decode DIFFERENT"
    \$Q compress --codec llm --workers 1 "$WORK/\$f" "$WORK/\$f.\$cpu.llmfs" 2>&1
    cmp "$WORK/\$f.\$cpu.llmfs" "$WORK/\$f.native.llmfs" && echo "\$cpu: \$f written here: EQUAL to the native bytes" || echo "\$cpu: \$f written here: DIFFERENT"
  done
  umount /proc/cpuinfo
done
INSIDE
{
  echo "== native ($(uname -m)) digests"
  for m in default/model.onnx test-int/model.onnx test-int/random.onnx test-int/random-extreme.onnx; do
    echo "$m $("$NATIVE" model-check --json --model models/$m | python3 -c 'import json, sys; print(json.load(sys.stdin)["logits_sha256"])')"
  done
  unshare -m bash "$WORK/inside.sh"
} 2>&1 | tee "$OUT/arm64.log"
{
echo "digests that differ from the native ones:"
python3 - "$OUT/arm64.log" <<'PY'
import json, sys
native, bad, seen = {}, 0, 0
lines = open(sys.argv[1]).read().splitlines()
for i, line in enumerate(lines):
    parts = line.split()
    if len(parts) == 2 and parts[0].endswith(".onnx"):
        native[parts[0]] = parts[1]
    if line.startswith("== ") and len(parts) == 4 and parts[3].endswith(".onnx") and i + 1 < len(lines):
        _, cpu, dev, model = parts
        try:
            got = json.loads(lines[i + 1])["logits_sha256"]
        except (ValueError, KeyError):
            got = "(no digest: " + lines[i + 1][:80] + ")"
        seen += 1
        if got != native.get(model):
            bad += 1
            print(f"  {cpu} {dev} {model}: {got}")
print(f"  {bad} of {seen}")
PY
grep -c "EQUAL" "$OUT/arm64.log" | sed 's/^/byte comparisons equal: /'
grep "DIFFERENT" "$OUT/arm64.log" || true
} | tee "$OUT/summary.txt"
