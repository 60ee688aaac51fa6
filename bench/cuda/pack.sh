#!/bin/bash
# Packs what a GPU machine needs to run the CUDA checks into .cuda/1, .cuda/2
# and .cuda/3 (each under 40 MiB: a machine reached through a 64 MiB
# transfer, the repository's 25 MiB included). See bench/cuda/README.md.
#
#   bash bench/cuda/pack.sh [SM]      (SM: the GPU's architecture, default 90)
set -euo pipefail
cd "$(dirname "$0")/../.."
SM=${1:-90}
WHEEL=onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
WHEEL_SHA256=05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7
WORK=${CUDA_PACK_WORK:-/var/tmp/llmfs-cuda-pack}
OUT=.cuda
mkdir -p "$WORK" && rm -rf "$OUT" && mkdir -p $OUT/1 $OUT/2 $OUT/3

# onnxruntime-gpu for the machine's Python 3.12 (its CUDA 13 build).
if ! echo "$WHEEL_SHA256  $WORK/$WHEEL" | sha256sum -c --status 2>/dev/null; then
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 -d "$WORK" onnxruntime-gpu==1.31.1
  echo "$WHEEL_SHA256  $WORK/$WHEEL" | sha256sum -c
fi
rm -rf "$WORK/wheel" && mkdir -p "$WORK/wheel" && (cd "$WORK/wheel" && unzip -q "../$WHEEL")
CAPI=$WORK/wheel/onnxruntime/capi
PYLIB=onnxruntime_pybind11_state.cpython-312-x86_64-linux-gnu.so
python3 bench/cuda/prune_fatbin.py "$CAPI/libonnxruntime_providers_cuda.so" "$WORK/providers_cuda.so" --sm "$SM"
xz -9 -T2 -c "$WORK/providers_cuda.so" > "$WORK/providers_cuda.so.xz"
split -n 2 -d "$WORK/providers_cuda.so.xz" "$WORK/providers_cuda.so.xz.part"
mv "$WORK/providers_cuda.so.xz.part00" $OUT/1/
mv "$WORK/providers_cuda.so.xz.part01" $OUT/2/
xz -9 -T2 -c "$CAPI/libonnxruntime.so.1.31.1" > $OUT/1/libonnxruntime.so.1.31.1.xz
cp "$CAPI/libonnxruntime_providers_shared.so" $OUT/1/
xz -9 -T2 -c "$CAPI/$PYLIB" > "$OUT/2/$PYLIB.xz"
(cd "$WORK/wheel" && find onnxruntime -name '*.so*' -prune -o -type f -print | tar cf - -T - | xz -9) > $OUT/2/ortpy.tar.xz
{
  (cd "$WORK" && sha256sum providers_cuda.so | sed 's/providers_cuda.so/libonnxruntime_providers_cuda.so/')
  (cd "$CAPI" && sha256sum libonnxruntime.so.1.31.1 libonnxruntime_providers_shared.so "$PYLIB")
} > $OUT/1/SHA256SUMS

# llmfs with the CUDA feature, and files written here on the CPU for the GPU
# to decode and to reproduce byte for byte.
CARGO_TARGET_DIR="$WORK/target" cargo build --release --features cuda
strip -o "$WORK/llmfs" "$WORK/target/release/llmfs"
xz -9 -T2 -c "$WORK/llmfs" > $OUT/3/llmfs.xz
cargo build --release
C=../shared/corpora/cantrbry
for f in alice29.txt asyoulik.txt cp.html fields.c lcet10.txt plrabn12.txt; do cp $C/$f $OUT/3/; done
for f in alice29.txt asyoulik.txt cp.html fields.c; do
  ./target/release/llmfs compress --codec llm $C/$f $OUT/3/$f.cpu.llmfs
done
for m in default/model.onnx test-int/model.onnx test-int/random.onnx test-int/random-extreme.onnx; do
  echo "$m $(./target/release/llmfs model-check --json --model models/$m | python3 -c 'import json, sys; print(json.load(sys.stdin)["logits_sha256"])')"
done > $OUT/3/cpu-digests.txt
du -sh $OUT/*
