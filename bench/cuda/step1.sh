#!/bin/bash
# GPU machine, call 1 of 3 (carry .cuda/1): stash the first half of the CUDA
# runtime in /tmp (kept while the machine stays warm), find CUDA's libraries.
set -u
S=/tmp/llmfs-cuda
mkdir -p $S && cp .cuda/1/* $S/
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv | tee $OUT/gpu.txt
timeout 90 find /opt /usr/local /usr/lib \( -name 'libcublasLt.so.13' -o -name 'libcublas.so.13' \
  -o -name 'libcudart.so.13' -o -name 'libcurand.so.10' -o -name 'libcufft.so.12' \) 2>/dev/null \
  | tee -a $OUT/gpu.txt | xargs -r -n1 dirname | sort -u | paste -sd: > $S/ldpath
echo "CUDA libraries: $(cat $S/ldpath)"
