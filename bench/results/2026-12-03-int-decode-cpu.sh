#!/bin/bash
# Decode speed of the integer model's rebuilt CPU variant (branch intdec:
# six-pass uint64 requantisation, Clip, division-free softmax table) against
# main's, and against the float model, in the same rounds. CPU seconds
# (user+sys) and wall seconds to decode s.txt (the first 128 KiB of
# lcet10.txt and of bible.txt, 4 blocks of 64 KiB) with
# `llmfs decompress --workers 1`, alternating per round:
#   float    models/float-d192l3/model.onnx
#   int-old  main's models/default/model.onnx (28b6c05)
#   int-new  this branch's models/default/model.onnx
# One release build of 28b6c05 (this branch changes no Rust code) runs all
# three. Setup, in a scratch folder:
#   head -c 131072 ../shared/corpora/cantrbry/lcet10.txt > s.txt
#   head -c 131072 ../shared/corpora/large/bible.txt >> s.txt
#   cp <build>/target/release/llmfs llmfs
#   cp <main>/models/default/model.onnx int-old.onnx; cp <intdec>/models/default/model.onnx int-new.onnx
#   ./llmfs compress --codec llm --model <main>/models/float-d192l3/model.onnx s.txt s-float.llm
#   ./llmfs compress --codec llm --model int-old.onnx s.txt s-int-old.llm
#   ./llmfs compress --codec llm --model int-new.onnx s.txt s-int-new.llm
# (s-int-old.llm and s-int-new.llm differ only in the model and engine ids
# they name: the same logits, the same coded bytes.)
for rep in $(seq ${ROUNDS:-3}); do
  for m in float int-old int-new; do
    case $m in float) mf=/work/main/models/float-d192l3/model.onnx;; *) mf=$m.onnx;; esac
    /usr/bin/time -f "$rep $m cpu %U+%S wall %e" ./llmfs decompress --workers 1 --model $mf s-$m.llm out-$m.txt 2>&1 | grep cpu
    cmp -s out-$m.txt s.txt || echo MISMATCH
  done
done
