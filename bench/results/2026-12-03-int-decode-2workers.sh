#!/bin/bash
# llm decode with 2 workers: float default (models/float-d192l3) against the integer default (built in),
# alternating, on the same 256 KiB (first 128 KiB of lcet10.txt + first 128 KiB of bible.txt, 4 blocks).
for rep in $(seq ${ROUNDS:-3}); do
  for m in float int; do
    case $m in float) model=(--model /work/main/models/float-d192l3/model.onnx);; int) model=();; esac
    /usr/bin/time -f "$rep $m cpu %U+%S wall %e" ./llmfs decompress --workers 2 "${model[@]}" s-$m.llm out-$m.txt 2>&1 | grep cpu
    cmp -s out-$m.txt s.txt || echo MISMATCH
  done
done
