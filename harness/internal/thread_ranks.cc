#include "harness/internal/thread_ranks.h"

#include <memory>
#include <thread>
#include <vector>

#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include "absl/synchronization/barrier.h"
#include "gtest/gtest.h"

namespace saelab {

void RunOnThreadRanks(int world, absl::Duration timeout,
                      const std::function<void(Communicator&)>& body) {
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::HashStore>();
  // Every rank finishes its rendezvous before any rank runs the body: a
  // body that returns at once (a refused config) would otherwise close its
  // connections while a peer is still completing its side of the mesh, and
  // that peer's rendezvous would fail. Failed ranks wait here too, so the
  // others never block on them.
  auto* all_connected = new absl::Barrier(world);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < world; ++rank) {
    threads.emplace_back([&, rank] {
      absl::StatusOr<std::unique_ptr<Communicator>> comm =
          Communicator::OverStore(store, rank, world, timeout);
      if (all_connected->Block()) delete all_connected;  // the last one out
      ASSERT_TRUE(comm.ok()) << comm.status();
      body(**comm);
    });
  }
  for (std::thread& t : threads) t.join();
}

}  // namespace saelab
