#include "harness/parallel_for.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace saelab {
namespace {

using Chunk = std::pair<int64_t, int64_t>;
using ::testing::ElementsAre;

// Restores LibTorch's thread count after a test changes it.
class ThreadCount {
 public:
  explicit ThreadCount(int threads) : saved_(at::get_num_threads()) {
    at::set_num_threads(threads);
  }
  ~ThreadCount() { at::set_num_threads(saved_); }

 private:
  int saved_;
};

struct Recorded {
  std::vector<Chunk> chunks;  // sorted by begin
  int distinct_threads = 0;
};

Recorded Record(int64_t begin, int64_t end, int64_t grain) {
  std::mutex mu;
  Recorded run;
  std::vector<std::thread::id> ids;
  ParallelFor(begin, end, grain, [&](int64_t b, int64_t e) {
    std::lock_guard<std::mutex> lock(mu);
    run.chunks.emplace_back(b, e);
    ids.push_back(std::this_thread::get_id());
  });
  std::sort(run.chunks.begin(), run.chunks.end());
  std::sort(ids.begin(), ids.end());
  run.distinct_threads = static_cast<int>(std::unique(ids.begin(), ids.end()) - ids.begin());
  return run;
}

TEST(ParallelForTest, SplitsLikeLibTorchsOpenMpBackend) {
  ThreadCount threads(2);
  // min(2 threads, ceil(100 / 8)) = 2 chunks of 50.
  EXPECT_THAT(Record(0, 100, 8).chunks, ElementsAre(Chunk{0, 50}, Chunk{50, 100}));
  // Odd range: chunks of ceil(7 / 2) = 4, the last shorter.
  EXPECT_THAT(Record(3, 10, 1).chunks, ElementsAre(Chunk{3, 7}, Chunk{7, 10}));
  // Grain 0 means one chunk per thread.
  EXPECT_THAT(Record(0, 5, 0).chunks, ElementsAre(Chunk{0, 3}, Chunk{3, 5}));
}

TEST(ParallelForTest, ThreeThreadsCapByGrain) {
  ThreadCount threads(3);
  // ceil(20 / 10) = 2 chunks although 3 threads are allowed.
  EXPECT_THAT(Record(0, 20, 10).chunks, ElementsAre(Chunk{0, 10}, Chunk{10, 20}));
  EXPECT_THAT(Record(0, 30, 1).chunks,
              ElementsAre(Chunk{0, 10}, Chunk{10, 20}, Chunk{20, 30}));
}

// The check that would have caught loops silently running on one thread
// (at::parallel_for called from a file compiled without -fopenmp).
TEST(ParallelForTest, ChunksRunOnDistinctThreads) {
  ThreadCount threads(2);
  const Recorded run = Record(0, 1000, 1);
  ASSERT_EQ(run.chunks.size(), 2u);
  EXPECT_EQ(run.distinct_threads, 2);
}

TEST(ParallelForTest, SmallRangesOneThreadAndEmptyRangesRunInline) {
  ThreadCount threads(2);
  EXPECT_THAT(Record(0, 8, 8).chunks, ElementsAre(Chunk{0, 8}));  // range <= grain
  EXPECT_THAT(Record(4, 5, 0).chunks, ElementsAre(Chunk{4, 5}));  // one item
  EXPECT_TRUE(Record(5, 5, 1).chunks.empty());
  EXPECT_TRUE(Record(6, 5, 1).chunks.empty());
  ThreadCount one(1);
  EXPECT_THAT(Record(0, 100, 1).chunks, ElementsAre(Chunk{0, 100}));
}

TEST(ParallelForTest, NestedLoopsRunInlineInsideAChunk) {
  ThreadCount threads(2);
  std::mutex mu;
  std::vector<std::vector<Chunk>> inner_chunks;
  EXPECT_FALSE(InParallelFor());
  ParallelFor(0, 2, 1, [&](int64_t, int64_t) {
    std::vector<Chunk> mine;
    const bool inside = InParallelFor();
    ParallelFor(0, 64, 1, [&](int64_t b, int64_t e) { mine.emplace_back(b, e); });
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_TRUE(inside);
    inner_chunks.push_back(mine);
  });
  EXPECT_FALSE(InParallelFor());
  EXPECT_THAT(inner_chunks, ElementsAre(ElementsAre(Chunk{0, 64}), ElementsAre(Chunk{0, 64})));
}

TEST(ParallelForTest, AnExceptionInAChunkReachesTheCaller) {
  ThreadCount threads(2);
  EXPECT_THROW(ParallelFor(0, 100, 1,
                           [](int64_t b, int64_t) {
                             if (b > 0) throw std::runtime_error("second chunk");
                           }),
               std::runtime_error);
}

}  // namespace
}  // namespace saelab
