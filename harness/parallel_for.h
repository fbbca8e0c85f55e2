// ParallelFor: the one way saelab's own loops use the cores LibTorch is
// given (at::set_num_threads, `--threads`).
//
//   ParallelFor(0, rows, /*grain=*/8, [&](int64_t begin, int64_t end) {
//     for (int64_t r = begin; r < end; ++r) out[r] = f(in[r]);  // own rows only
//   });
//
// The contract is at::parallel_for's, with its OpenMP backend's split:
// `body` is called on disjoint chunks covering [begin, end); with
// T = at::get_num_threads() there are min(T, ceil(range / grain)) chunks of
// ceil(range / chunks) items (the last may be shorter), each on its own
// thread; the whole range runs inline when range <= grain, when T is 1, or
// when called from inside another ParallelFor. It returns when every chunk
// is done. A kernel whose bits must not depend on the thread count must not
// depend on the split.
//
// Why not at::parallel_for itself: its parallel region is a `#pragma omp
// parallel` in an inline header, so it runs in parallel only where the
// calling file is compiled with -fopenmp. Without it the pragma is dropped
// and every loop silently runs on one thread; saelab's kernels did, until
// this wrapper. Here one source file is compiled with -fopenmp, and callers
// need no special flags. Under ThreadSanitizer the chunks run on
// std::threads instead: TSan cannot see the synchronisation inside the
// uninstrumented libgomp and would report every hand-over as a race, while
// with std::thread it checks the kernels' own writes (`--config=tsan`).
#ifndef SAELAB_HARNESS_PARALLEL_FOR_H_
#define SAELAB_HARNESS_PARALLEL_FOR_H_

#include <cstdint>

#include "absl/functional/function_ref.h"

namespace saelab {

void ParallelFor(int64_t begin, int64_t end, int64_t grain,
                 absl::FunctionRef<void(int64_t begin, int64_t end)> body);

// True on a thread inside a ParallelFor chunk (then a nested ParallelFor
// runs inline).
bool InParallelFor();

}  // namespace saelab

#endif  // SAELAB_HARNESS_PARALLEL_FOR_H_
