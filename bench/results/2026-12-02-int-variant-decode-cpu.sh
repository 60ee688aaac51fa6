#!/bin/bash
# CPU seconds (user+sys) to decode s.txt (4 blocks), 1 worker, per model, alternating
for rep in 1 2 3; do
  for m in float int-old int-new; do
    case $m in float) mf=/work/main/models/float-d192l3/model.onnx;; *) mf=/tmp/spd/$m.onnx;; esac
    /usr/bin/time -f "$rep $m cpu %U+%S wall %e" ./llmfs decompress --workers 1 --model $mf s-$m.llm out-$m.txt 2>&1 | grep cpu
    cmp -s out-$m.txt s.txt || echo MISMATCH
  done
done
