#!/usr/bin/env bash
# The CUDA kernels compile here, without a GPU: nvcc builds topk_kernels.cu
# for sm_90, and the LibTorch glue, the GPU test and the GPU benchmark pass
# g++'s syntax check against this machine's LibTorch headers and the CUDA
# headers. Skipped (reported, exit 0) where nvcc is not installed.
set -euo pipefail
nvcc="${NVCC:-/usr/local/cuda/bin/nvcc}"
if [[ ! -x "$nvcc" ]]; then
  echo "SKIPPED: no nvcc at $nvcc"
  exit 0
fi
cuda_home="$(dirname "$(dirname "$nvcc")")"
dir=sae/kernels/cuda
"$nvcc" -std=c++17 -O3 -arch=sm_90 -Xcompiler -fPIC -I. -c "$dir/topk_kernels.cu" \
    -o "$TEST_TMPDIR/topk_kernels.o" &
for source in topk_cuda.cc cuda_kernels_test.cc cuda_step_benchmark.cc; do
  g++ -std=c++17 -fsyntax-only -I. -I/usr/include/torch/csrc/api/include \
      -I"$cuda_home/include" "$dir/$source" &
done
status=0
for job in $(jobs -p); do wait "$job" || status=1; done
[[ -s "$TEST_TMPDIR/topk_kernels.o" ]] || status=1
echo "nvcc and g++: $([[ $status == 0 ]] && echo compiled || echo FAILED)"
exit "$status"
