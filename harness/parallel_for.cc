#include "harness/parallel_for.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <exception>
#include <thread>
#include <vector>

#if defined(__SANITIZE_THREAD__)
#define SAELAB_THREAD_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SAELAB_THREAD_SANITIZER 1
#endif
#endif

#if !defined(SAELAB_THREAD_SANITIZER) && !defined(_OPENMP)
#error "harness/parallel_for.cc must be compiled with -fopenmp (see its BUILD rule)"
#endif

namespace saelab {
namespace {

thread_local bool in_parallel_for = false;

// Marks the current thread as inside a chunk for its lifetime.
class ChunkScope {
 public:
  ChunkScope() : outer_(in_parallel_for) { in_parallel_for = true; }
  ~ChunkScope() { in_parallel_for = outer_; }

 private:
  bool outer_;
};

#ifdef SAELAB_THREAD_SANITIZER
int64_t DivUp(int64_t a, int64_t b) { return (a + b - 1) / b; }
#endif

}  // namespace

bool InParallelFor() { return in_parallel_for || at::in_parallel_region(); }

void ParallelFor(int64_t begin, int64_t end, int64_t grain,
                 absl::FunctionRef<void(int64_t, int64_t)> body) {
  if (begin >= end) return;
  const int64_t range = end - begin;
  const int64_t max_threads = at::get_num_threads();
  if (range <= grain || range == 1 || max_threads <= 1 || InParallelFor()) {
    ChunkScope scope;
    body(begin, end);
    return;
  }
#ifdef SAELAB_THREAD_SANITIZER
  const int64_t chunks = grain > 0 ? std::min(max_threads, DivUp(range, grain)) : max_threads;
  const int64_t chunk_size = DivUp(range, chunks);
  std::vector<std::exception_ptr> errors(chunks);
  auto run_chunk = [&](int64_t c) {
    const int64_t chunk_begin = begin + c * chunk_size;
    if (chunk_begin >= end) return;
    ChunkScope scope;
    try {
      body(chunk_begin, std::min(end, chunk_begin + chunk_size));
    } catch (...) {
      errors[c] = std::current_exception();
    }
  };
  std::vector<std::thread> threads;
  for (int64_t c = 1; c < chunks; ++c) threads.emplace_back(run_chunk, c);
  run_chunk(0);
  for (std::thread& t : threads) t.join();
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
#else
  // at::parallel_for's own region, here compiled with -fopenmp: the same
  // libgomp thread pool LibTorch's operators run on.
  // It splits exactly as above.
  at::parallel_for(begin, end, grain, [&](int64_t chunk_begin, int64_t chunk_end) {
    ChunkScope scope;
    body(chunk_begin, chunk_end);
  });
#endif
}

}  // namespace saelab
