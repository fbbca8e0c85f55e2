#!/usr/bin/env bash
# harness/distributed.cc with its NCCL branch (SAELAB_WITH_NCCL) passes
# g++'s syntax check against this machine's LibTorch headers and the CUDA
# toolkit's nccl.h. Debian's CPU LibTorch ships the c10d NCCL headers but
# not the generated c10/cuda/impl/cuda_cmake_macros.h, so the test writes
# that one-line header itself. Skipped (exit 0) without the toolkit.
set -euo pipefail
cuda="${CUDA_HOME:-/usr/local/cuda}"
if [[ ! -f "$cuda/include/nccl.h" ]]; then
  echo "SKIPPED: no $cuda/include/nccl.h"
  exit 0
fi
stub="$TEST_TMPDIR/stub/c10/cuda/impl"
mkdir -p "$stub"
printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' > "$stub/cuda_cmake_macros.h"
g++ -std=c++17 -fsyntax-only -DUSE_C10D_GLOO -DUSE_C10D_NCCL -DSAELAB_WITH_NCCL -I. \
    -I"$TEST_TMPDIR/stub" -I/usr/include/torch/csrc/api/include -I"$cuda/include" \
    harness/distributed.cc
echo "distributed.cc with NCCL: compiled"
