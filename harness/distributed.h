// Several processes working on one job: rank discovery, rendezvous and the
// collectives data-parallel SAE training needs, on PyTorch's c10d (a
// TCPStore for the rendezvous, Gloo for the collectives over TCP). No
// networking of our own.
//
// A worker learns its place from the environment the way torchrun and
// Slurm set it (WorldSettingsFromEnvironment), connects, and installs the
// communicator for the process; the trainer then shards every batch over
// the ranks (sae/trainer.h):
//
//   ASSIGN_OR_RETURN(std::optional<WorldSettings> world, WorldSettingsFromEnvironment());
//   if (world.has_value()) {
//     ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm, Communicator::Connect(*world));
//     SetProcessCommunicator(comm.get());   // keep comm alive while in use
//   }
//
// LaunchLocalWorkers (harness/launcher.h) starts N such workers on one
// machine, like `torchrun --nproc_per_node=N`.
#ifndef SAELAB_HARNESS_DISTRIBUTED_H_
#define SAELAB_HARNESS_DISTRIBUTED_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/types.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace saelab {

// Where this process sits in a job of world_size processes.
struct WorldSettings {
  int rank = 0;        // 0 .. world_size - 1
  int world_size = 1;
  int local_rank = 0;  // rank among the processes on this host
  // The TCPStore of the rendezvous: rank 0 serves it unless an agent (the
  // launcher, or torchrun's) already does (TORCHELASTIC_USE_AGENT_STORE).
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool agent_hosts_store = false;
  // How long a collective or the rendezvous waits for a peer before
  // failing with an error instead of hanging (SAELAB_DIST_TIMEOUT_SECONDS).
  // Long enough for the other ranks to wait out rank 0's tokenising of the
  // corpora or its share of a harvest at a barrier; a peer that dies is
  // noticed at once when its sockets close.
  absl::Duration timeout = absl::Minutes(30);
};

// The settings in the environment, read through `getenv` (the process's
// by default):
// - torchrun's: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT,
//   TORCHELASTIC_USE_AGENT_STORE;
// - else Slurm's: SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, with
//   MASTER_ADDR (or the first host of SLURM_JOB_NODELIST / SLURM_NODELIST
//   when it is a plain name or a name[a-b,...] range) and MASTER_PORT
//   (default 29500);
// - nullopt when neither RANK nor SLURM_PROCID is set (one process), or
//   when WORLD_SIZE / SLURM_NTASKS is 1.
// Errors (InvalidArgument, naming the variable and its value): a set but
// non-integer or out-of-range rank, world size or port; RANK without
// WORLD_SIZE; no master address to be found.
absl::StatusOr<std::optional<WorldSettings>> WorldSettingsFromEnvironment(
    const std::function<const char*(const char*)>& getenv = nullptr);

// The ranks of one job and the collectives between them. Every collective
// is called by every rank in the same order; a peer that died or stopped
// answering makes it fail within the timeout with Unavailable, naming the
// operation and this rank (a Gloo error never escapes as an exception).
// Thread-compatible: one thread per communicator at a time.
class Communicator {
 public:
  // Rendezvous through the TCPStore at master_addr:master_port (rank 0
  // serves it unless agent_hosts_store), then a Gloo process group over
  // TCP on the interface that reaches the master address.
  // Errors: Unavailable if the peers do not all arrive within the timeout.
  static absl::StatusOr<std::unique_ptr<Communicator>> Connect(const WorldSettings& world);
  // Over a store the caller made (tests: a FileStore or a HashStore shared
  // by threads), with Gloo on the loopback interface unless !loopback.
  static absl::StatusOr<std::unique_ptr<Communicator>> OverStore(
      c10::intrusive_ptr<c10d::Store> store, int rank, int world_size, absl::Duration timeout,
      bool loopback = true);
  ~Communicator();

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }

  // In place: every rank ends with the elementwise sum over ranks (each
  // tensor contiguous, same shapes and dtypes on every rank; CPU tensors
  // go through Gloo, CUDA tensors through NCCL in a --config=cuda build). Gloo's
  // ring reduction sums in an order fixed by the world size, so every rank
  // gets the same bits, and so does every rerun.
  absl::Status AllReduceSum(std::vector<torch::Tensor>& tensors);
  // The sum over ranks of one double per rank.
  absl::StatusOr<double> AllReduceSum(double value);
  // Every rank's `local` (same shape and dtype on every rank, contiguous)
  // stacked in rank order: [world_size, ...local's shape].
  absl::StatusOr<torch::Tensor> AllGather(const torch::Tensor& local);
  // Every rank's `local` concatenated along dim 0 in rank order, where the
  // first dimension may differ between ranks (the rest of the shape and
  // the dtype may not): two all-gathers, of the lengths and of `local`
  // padded to the longest.
  //   ASSIGN_OR_RETURN(torch::Tensor all, comm.AllGatherRagged(candidates));  // [sum of rows, ...]
  absl::StatusOr<torch::Tensor> AllGatherRagged(const torch::Tensor& local);
  // On root: every rank's `local` (same shape and dtype everywhere) stacked
  // in rank order, [world_size, ...]; elsewhere an undefined tensor. Only
  // root holds the whole.
  absl::StatusOr<torch::Tensor> Gather(const torch::Tensor& local, int root = 0);
  // In place: every rank ends with root's values.
  absl::Status Broadcast(std::vector<torch::Tensor>& tensors, int root = 0);
  // root's `value` on every rank (others pass anything).
  absl::StatusOr<std::string> BroadcastString(const std::string& value, int root = 0);
  // Returns once every rank has called it.
  absl::Status Barrier();

 private:
  Communicator() = default;
  // Runs `op` (a c10d call), turning an exception into Unavailable.
  absl::Status Guard(const char* what, const std::function<void()>& op);
  // The process group for collectives on `t`: Gloo for CPU tensors; NCCL
  // (created on first use, over the same store) for CUDA tensors in a
  // --config=cuda build, FailedPrecondition in a Gloo-only one.
  absl::StatusOr<c10d::ProcessGroup*> GroupFor(const torch::Tensor& t);

  int rank_ = 0;
  int world_size_ = 1;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroup> group_;
  c10::intrusive_ptr<c10d::ProcessGroup> nccl_group_;  // --config=cuda only
  int64_t string_broadcasts_ = 0;
};

// For a step that fills a cache every rank then reads (token shards, an
// activation store): rank 0 runs `work` first, the others run it once rank
// 0 has finished (and find the cache filled). With a null communicator,
// runs it. Errors: work's; a failed barrier (a peer died).
absl::Status RankZeroFirst(Communicator* comm, const std::function<absl::Status()>& work);

// The communicator the process's training uses when a caller gives none
// (sae/trainer.h); null (the default) means one process. Not owned.
void SetProcessCommunicator(Communicator* communicator);
Communicator* ProcessCommunicator();

}  // namespace saelab

#endif  // SAELAB_HARNESS_DISTRIBUTED_H_
