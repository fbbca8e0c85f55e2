#!/usr/bin/env bash
# Builds saelab's CUDA kernels (sae/kernels/cuda/) with the GPU machine's
# own toolchain (nvcc and the CUDA LibTorch inside a PyTorch install; no
# Bazel needed), then runs their correctness checks against the CPU
# references and dense LibTorch, and the training-step benchmark, writing
# everything into OUT_DIR:
#
#   tools/gpu_check.sh OUT_DIR
#
#   OUT_DIR/nvidia-smi.txt       the GPU
#   OUT_DIR/kernels_test.txt     one PASS/FAIL line per check (exit status 1 on a FAIL)
#   OUT_DIR/step_benchmark.txt   ms/step, tokens/s, against dense LibTorch and the floor
#   OUT_DIR/build/               the binaries
#
# Environment: PYTHON (default python3) with torch for CUDA; NVCC (default
# nvcc on PATH, else /usr/local/cuda/bin/nvcc); CUDA_ARCH (default 90, the
# H100/H200).
set -euo pipefail
out="${1:?usage: tools/gpu_check.sh OUT_DIR}"
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
nvcc="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
cuda_home="$(dirname "$(dirname "$nvcc")")"
arch="${CUDA_ARCH:-90}"
mkdir -p "$out/build"
build="$(cd "$out/build" && pwd)"
torch_dir="$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
abi="$("$python" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')"
"$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee "$out/versions.txt"
"$nvcc" --version | tail -1 | tee -a "$out/versions.txt"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true

src="$root/sae/kernels/cuda"
cxxflags=(-std=c++17 -O3 -D_GLIBCXX_USE_CXX11_ABI="$abi" -I"$root" -I"$torch_dir/include"
          -I"$torch_dir/include/torch/csrc/api/include" -I"$cuda_home/include")
ldflags=(-L"$torch_dir/lib" -Wl,-rpath,"$torch_dir/lib" -Wl,--no-as-needed -ltorch -ltorch_cuda
         -ltorch_cpu -lc10_cuda -lc10 -L"$cuda_home/lib64" -Wl,-rpath,"$cuda_home/lib64" -lcudart
         -pthread)

echo "building in $build"
"$nvcc" -std=c++17 -O3 -arch="sm_$arch" -Xcompiler -fPIC -I"$root" -c "$src/topk_kernels.cu" \
    -o "$build/topk_kernels.o" &
g++ "${cxxflags[@]}" -c "$src/topk_cuda.cc" -o "$build/topk_cuda.o" &
g++ "${cxxflags[@]}" -c "$src/cuda_kernels_test.cc" -o "$build/cuda_kernels_test.o" &
g++ "${cxxflags[@]}" -c "$src/cuda_step_benchmark.cc" -o "$build/cuda_step_benchmark.o" &
for job in $(jobs -p); do wait "$job"; done
for program in cuda_kernels_test cuda_step_benchmark; do
  g++ "$build/$program.o" "$build/topk_cuda.o" "$build/topk_kernels.o" "${ldflags[@]}" \
      -o "$build/$program"
done

status=0
"$build/cuda_kernels_test" 2>&1 | tee "$out/kernels_test.txt" || status=1
"$build/cuda_step_benchmark" 2>&1 | tee "$out/step_benchmark.txt" || status=1
exit "$status"
