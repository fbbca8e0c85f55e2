#include "harness/internal/thread_ranks.h"

#include <memory>
#include <thread>
#include <vector>

#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include "gtest/gtest.h"

namespace saelab {

void RunOnThreadRanks(int world, absl::Duration timeout,
                      const std::function<void(Communicator&)>& body) {
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::HashStore>();
  std::vector<std::thread> threads;
  for (int rank = 0; rank < world; ++rank) {
    threads.emplace_back([&, rank] {
      absl::StatusOr<std::unique_ptr<Communicator>> comm =
          Communicator::OverStore(store, rank, world, timeout);
      ASSERT_TRUE(comm.ok()) << comm.status();
      body(**comm);
    });
  }
  for (std::thread& t : threads) t.join();
}

}  // namespace saelab
