#!/bin/bash
# GPU machine, call 3 of 3 (carry .cuda/3), right after call 2: llmfs built
# with --features cuda. Logits digests on every engine; files written on the
# CPU decode on the GPU; the GPU writes the CPU's bytes; encoding speed.
set -u -o pipefail
R=$PWD S=/tmp/llmfs-cuda G=$PWD/.cuda/3
[ -f $S/ort/libonnxruntime_providers_cuda.so ] || { echo "no runtime from step 2: run steps 1 and 2 again"; exit 1; }
cd $S
python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('$G/llmfs.xz'), open('llmfs', 'wb'))" && chmod +x llmfs || exit 1
export ORT_DYLIB_PATH=$S/ort/libonnxruntime.so.1.31.1 LD_LIBRARY_PATH=$(cat ldpath)
L="timeout 150 ./llmfs"
for m in default/model.onnx test-int/model.onnx test-int/random.onnx test-int/random-extreme.onnx; do
  for d in cuda cpu reference; do
    echo "== model-check $m $d"; $L model-check --json --device $d --model $R/models/$m 2>&1
  done
done | tee $OUT/model-check.log
echo "== the CPU's digests where the files were packed"; cat $G/cpu-digests.txt
{
for f in alice29.txt asyoulik.txt cp.html fields.c; do
  echo "== $f: compress on cuda"; $L compress --codec llm --device cuda --workers 2 --json $G/$f $f.cuda.llmfs 2>&1
  cmp $f.cuda.llmfs $G/$f.cpu.llmfs && echo "$f: written on the GPU: EQUAL to the CPU's bytes" || echo "$f: written on the GPU: DIFFERENT"
done
# Decoding on the GPU is slow (about 3 KB/s): the two smallest files.
for f in cp.html fields.c; do
  echo "== $f: decompress the CPU's file on cuda"; $L decompress --device cuda --workers 2 --json $G/$f.cpu.llmfs $f.back 2>&1
  cmp $f.back $G/$f && echo "$f: decoded on the GPU: EQUAL" || echo "$f: decoded on the GPU: DIFFERENT"
done
cat $G/lcet10.txt $G/plrabn12.txt > big.txt
for round in 1 2; do
  for c in cuda:1 cuda:4 cpu:16; do
    d=${c%%:*} w=${c#*:}
    echo "== round $round: compress on $d, $w workers"; $L compress --codec llm --device $d --workers $w --json big.txt big.$d.$w.llmfs 2>&1
  done
done
for f in big.cuda.*.llmfs; do cmp $f big.cpu.16.llmfs && echo "$f: EQUAL to the CPU's" || echo "$f: DIFFERENT"; done
} | tee $OUT/llmfs-cuda.log
