#!/bin/bash
# GPU machine, call 2 of 3 (carry .cuda/2), right after call 1: assemble
# onnxruntime-gpu, then run models/tools/cuda_check.py on the integer models.
set -u -o pipefail
R=$PWD S=/tmp/llmfs-cuda
[ -f $S/ldpath ] || { echo "no stash from step 1: the machine went back; run step 1 again"; exit 1; }
cp .cuda/2/* $S/ && cd $S && mkdir -p ort site
python3 - <<'PY' || exit 1
import lzma, shutil, tarfile
def unxz(src, dst):
    with lzma.open(src) as i, open(dst, "wb") as o:
        shutil.copyfileobj(i, o, 1 << 20)
with open("providers_cuda.so.xz", "wb") as o:
    for part in ("providers_cuda.so.xz.part00", "providers_cuda.so.xz.part01"):
        with open(part, "rb") as i:
            shutil.copyfileobj(i, o)
unxz("providers_cuda.so.xz", "ort/libonnxruntime_providers_cuda.so")
unxz("libonnxruntime.so.1.31.1.xz", "ort/libonnxruntime.so.1.31.1")
tarfile.open("ortpy.tar.xz").extractall("site", filter="data")
lib = "onnxruntime_pybind11_state.cpython-312-x86_64-linux-gnu.so"
unxz(lib + ".xz", "site/onnxruntime/capi/" + lib)
PY
cp libonnxruntime_providers_shared.so ort/
cp ort/libonnxruntime_providers_cuda.so ort/libonnxruntime_providers_shared.so site/onnxruntime/capi/
(cd ort && grep -v pybind ../SHA256SUMS | sha256sum -c) || exit 1
(cd site/onnxruntime/capi && grep pybind ../../../SHA256SUMS | sha256sum -c) || exit 1
export LD_LIBRARY_PATH=$(cat ldpath) PYTHONPATH=$S/site PYTHONUNBUFFERED=1
cd $R/models/tools
timeout 240 python3 cuda_check.py ../default/model.onnx ../test-int/model.onnx ../test-int/random.onnx \
  ../test-int/random-extreme.onnx --speed --json $OUT/cuda-check.json 2>&1 | tee $OUT/cuda-check.log
echo "cuda_check.py exit status $? (0: all equal, every node on the GPU; 2: all equal, shape nodes on the CPU)"
