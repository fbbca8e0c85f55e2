#include "harness/distributed.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "harness/internal/thread_ranks.h"
#include "gtest/gtest.h"

namespace saelab {
namespace {

using ::testing::HasSubstr;

std::function<const char*(const char*)> Env(const std::map<std::string, std::string>& vars) {
  return [vars](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

TEST(WorldSettingsTest, ReadsTorchrunVariables) {
  absl::StatusOr<std::optional<WorldSettings>> world = WorldSettingsFromEnvironment(
      Env({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "10.0.0.7"},
           {"MASTER_PORT", "29511"}, {"TORCHELASTIC_USE_AGENT_STORE", "True"},
           {"SAELAB_DIST_TIMEOUT_SECONDS", "42"}}));
  ASSERT_TRUE(world.ok()) << world.status();
  ASSERT_TRUE(world->has_value());
  EXPECT_EQ((*world)->rank, 3);
  EXPECT_EQ((*world)->world_size, 4);
  EXPECT_EQ((*world)->local_rank, 1);
  EXPECT_EQ((*world)->master_addr, "10.0.0.7");
  EXPECT_EQ((*world)->master_port, 29511);
  EXPECT_TRUE((*world)->agent_hosts_store);
  EXPECT_EQ((*world)->timeout, absl::Seconds(42));
}

TEST(WorldSettingsTest, ReadsSlurmVariablesAndTheFirstHostOfTheNodeList) {
  absl::StatusOr<std::optional<WorldSettings>> world = WorldSettingsFromEnvironment(
      Env({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"},
           {"SLURM_JOB_NODELIST", "gpu[07-09,12],cpu1"}}));
  ASSERT_TRUE(world.ok()) << world.status();
  ASSERT_TRUE(world->has_value());
  EXPECT_EQ((*world)->rank, 5);
  EXPECT_EQ((*world)->world_size, 8);
  EXPECT_EQ((*world)->local_rank, 1);
  EXPECT_EQ((*world)->master_addr, "gpu07");
  EXPECT_EQ((*world)->master_port, 29500);
  EXPECT_FALSE((*world)->agent_hosts_store);

  world = WorldSettingsFromEnvironment(
      Env({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_NODELIST", "nodeA,nodeB"}}));
  ASSERT_TRUE(world.ok()) << world.status();
  EXPECT_EQ((*world)->master_addr, "nodeA");
}

TEST(WorldSettingsTest, OneProcessWhenNothingOrAWorldOfOneIsSet) {
  absl::StatusOr<std::optional<WorldSettings>> world = WorldSettingsFromEnvironment(Env({}));
  ASSERT_TRUE(world.ok());
  EXPECT_FALSE(world->has_value());
  world = WorldSettingsFromEnvironment(
      Env({{"RANK", "0"}, {"WORLD_SIZE", "1"}, {"MASTER_ADDR", "h"}}));
  ASSERT_TRUE(world.ok());
  EXPECT_FALSE(world->has_value());
}

TEST(WorldSettingsTest, BadSettingsAreErrorsNamingTheVariable) {
  auto error = [](const std::map<std::string, std::string>& vars) {
    absl::StatusOr<std::optional<WorldSettings>> world = WorldSettingsFromEnvironment(Env(vars));
    EXPECT_FALSE(world.ok());
    return std::string(world.status().message());
  };
  EXPECT_THAT(error({{"RANK", "1"}, {"MASTER_ADDR", "h"}}), HasSubstr("WORLD_SIZE is not"));
  EXPECT_THAT(error({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}),
              HasSubstr("RANK=2 is not below WORLD_SIZE=2"));
  EXPECT_THAT(error({{"RANK", "one"}, {"WORLD_SIZE", "2"}}), HasSubstr("RANK='one'"));
  EXPECT_THAT(error({{"RANK", "0"}, {"WORLD_SIZE", "2"}}), HasSubstr("MASTER_ADDR is not"));
  EXPECT_THAT(error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"},
                     {"MASTER_PORT", "70000"}}),
              HasSubstr("MASTER_PORT='70000'"));
  EXPECT_THAT(error({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}}),
              HasSubstr("SLURM_JOB_NODELIST"));
}

TEST(CommunicatorTest, CollectivesGiveEveryRankTheSameAnswer) {
  RunOnThreadRanks(3, absl::Seconds(30), [](Communicator& comm) {
    const int r = comm.rank();
    std::vector<torch::Tensor> tensors = {torch::tensor({1.0f * (r + 1), 10.0f * (r + 1)}),
                                          torch::tensor({static_cast<int64_t>(1) << r})};
    absl::Status status = comm.AllReduceSum(tensors);
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_TRUE(torch::equal(tensors[0], torch::tensor({6.0f, 60.0f})));
    EXPECT_EQ(tensors[1].item<int64_t>(), 7);  // ranks 0, 1, 2 each set one bit
    absl::StatusOr<double> sum = comm.AllReduceSum(0.5 * r);
    ASSERT_TRUE(sum.ok());
    EXPECT_EQ(*sum, 1.5);

    absl::StatusOr<torch::Tensor> gathered =
        comm.AllGather(torch::tensor({static_cast<int64_t>(r), static_cast<int64_t>(10 * r)}));
    ASSERT_TRUE(gathered.ok()) << gathered.status();
    EXPECT_TRUE(torch::equal(*gathered, torch::tensor({0, 0, 1, 10, 2, 20}, torch::kInt64).view({3, 2})));

    // Rank r sends r rows: [0 rows; 1 row of 1s; 2 rows of 2s].
    absl::StatusOr<torch::Tensor> ragged =
        comm.AllGatherRagged(torch::full({r, 2}, static_cast<double>(r), torch::kFloat64));
    ASSERT_TRUE(ragged.ok()) << ragged.status();
    EXPECT_TRUE(torch::equal(*ragged, torch::tensor({1.0, 1.0, 2.0, 2.0, 2.0, 2.0}, torch::kFloat64)
                                          .view({3, 2})));

    // Nothing on any rank: an empty result of the same trailing shape.
    absl::StatusOr<torch::Tensor> none = comm.AllGatherRagged(torch::zeros({0, 2}));
    ASSERT_TRUE(none.ok()) << none.status();
    EXPECT_EQ(none->sizes(), (std::vector<int64_t>{0, 2}));

    absl::StatusOr<torch::Tensor> at_one = comm.Gather(torch::full({2}, r + 0.5f), /*root=*/1);
    ASSERT_TRUE(at_one.ok()) << at_one.status();
    if (r == 1) {
      EXPECT_TRUE(torch::equal(*at_one, torch::tensor({0.5f, 0.5f, 1.5f, 1.5f, 2.5f, 2.5f}).view({3, 2})));
    } else {
      EXPECT_FALSE(at_one->defined());
    }

    std::vector<torch::Tensor> from_root = {torch::full({2, 2}, static_cast<float>(r)),
                                            torch::full({3}, static_cast<double>(r + 7))};
    ASSERT_TRUE(comm.Broadcast(from_root, /*root=*/2).ok());
    EXPECT_TRUE(torch::equal(from_root[0], torch::full({2, 2}, 2.0f)));
    EXPECT_TRUE(torch::equal(from_root[1], torch::full({3}, 9.0, torch::kFloat64)));

    // Two in a row: the second never reads the first's value.
    absl::StatusOr<std::string> first = comm.BroadcastString(r == 0 ? "/runs/a" : "x");
    absl::StatusOr<std::string> second = comm.BroadcastString(r == 0 ? "/runs/b" : "y");
    ASSERT_TRUE(first.ok() && second.ok());
    EXPECT_EQ(*first, "/runs/a");
    EXPECT_EQ(*second, "/runs/b");
    EXPECT_TRUE(comm.Barrier().ok());
  });
}

TEST(CommunicatorTest, APeerThatLeavesMakesTheCollectiveFailWithinTheTimeout) {
  absl::Duration waited;
  absl::Status status;
  RunOnThreadRanks(2, absl::Seconds(3), [&](Communicator& comm) {
    if (comm.rank() == 1) return;  // leaves: its communicator closes its connections
    const absl::Time start = absl::Now();
    std::vector<torch::Tensor> t = {torch::ones({4})};
    status = comm.AllReduceSum(t);
    waited = absl::Now() - start;
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("rank 0 of 2: all-reduce failed"));
  EXPECT_LT(waited, absl::Seconds(15));
}

// A free TCP port on the loopback interface.
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

TEST(CommunicatorTest, ConnectsThroughTheMasterAddressLikeTorchrunWorkers) {
  const int port = FreePort();
  std::vector<std::thread> threads;
  std::vector<float> got(2);
  for (int rank = 0; rank < 2; ++rank) {
    threads.emplace_back([&, rank] {
      WorldSettings world;
      world.rank = rank;
      world.world_size = 2;
      world.master_addr = "127.0.0.1";
      world.master_port = port;
      world.timeout = absl::Seconds(30);
      absl::StatusOr<std::unique_ptr<Communicator>> comm = Communicator::Connect(world);
      ASSERT_TRUE(comm.ok()) << comm.status();
      std::vector<torch::Tensor> t = {torch::full({1}, rank + 1.0f)};
      ASSERT_TRUE((*comm)->AllReduceSum(t).ok());
      got[rank] = t[0].item<float>();
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(got, std::vector<float>({3.0f, 3.0f}));
}

TEST(CommunicatorTest, NoRendezvousIsAnErrorWithinTheTimeout) {
  WorldSettings world;
  world.rank = 1;  // a client whose server never comes
  world.world_size = 2;
  world.master_port = FreePort();
  world.timeout = absl::Seconds(2);
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<Communicator>> comm = Communicator::Connect(world);
  EXPECT_EQ(comm.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(comm.status().message()), HasSubstr("rank 1 of 2: no rendezvous"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(15));
}

}  // namespace
}  // namespace saelab
