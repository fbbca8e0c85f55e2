// Test helper: the ranks of a job as threads of one process, each with its
// own Communicator (harness/distributed.h) over one in-memory store: the
// same Gloo collectives as separate processes, without a launcher.
//
//   RunOnThreadRanks(2, absl::Seconds(60), [](Communicator& comm) {
//     ... comm.rank() ... comm.AllReduceSum(...) ...
//   });
#ifndef SAELAB_HARNESS_INTERNAL_THREAD_RANKS_H_
#define SAELAB_HARNESS_INTERNAL_THREAD_RANKS_H_

#include <functional>

#include "absl/time/time.h"
#include "harness/distributed.h"

namespace saelab {

// Runs body on `world` threads, one rank each, and joins them. A rank
// whose communicator cannot be made records a test failure.
void RunOnThreadRanks(int world, absl::Duration timeout,
                      const std::function<void(Communicator&)>& body);

}  // namespace saelab

#endif  // SAELAB_HARNESS_INTERNAL_THREAD_RANKS_H_
