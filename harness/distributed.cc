#include "harness/distributed.h"

#include <algorithm>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <utility>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef SAELAB_WITH_NCCL
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "harness/status_macros.h"

namespace saelab {
namespace {

Communicator* process_communicator = nullptr;

// An integer variable in [min, max], or nullopt when unset or empty.
absl::StatusOr<std::optional<int64_t>> IntVariable(
    const std::function<const char*(const char*)>& getenv, const char* name, int64_t min,
    int64_t max) {
  const char* text = getenv(name);
  if (text == nullptr || *text == '\0') return std::optional<int64_t>();
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value) || value < min || value > max) {
    return absl::InvalidArgumentError(absl::StrCat("environment variable ", name, "='", text,
                                                   "' is not an integer in [", min, ", ", max,
                                                   "]"));
  }
  return std::optional<int64_t>(value);
}

// The first host of a Slurm node list: "gpu[07-09,12],cpu1" -> "gpu07".
std::string FirstSlurmHost(const std::string& list) {
  const size_t bracket = list.find('['), comma = list.find(',');
  if (bracket == std::string::npos || (comma != std::string::npos && comma < bracket)) {
    return list.substr(0, comma);
  }
  const size_t end = list.find_first_of("-,]", bracket + 1);
  return list.substr(0, bracket) + list.substr(bracket + 1, end - bracket - 1);
}

bool IsLoopback(const std::string& address) {
  return address == "localhost" || address.rfind("127.", 0) == 0 || address == "::1";
}

}  // namespace

absl::StatusOr<std::optional<WorldSettings>> WorldSettingsFromEnvironment(
    const std::function<const char*(const char*)>& getenv_or_null) {
  const std::function<const char*(const char*)> getenv =
      getenv_or_null ? getenv_or_null : [](const char* name) { return std::getenv(name); };
  constexpr int64_t kMaxRanks = 1 << 20;
  WorldSettings world;
  const bool torchrun = getenv("RANK") != nullptr && *getenv("RANK") != '\0';
  const char* rank_name = torchrun ? "RANK" : "SLURM_PROCID";
  const char* size_name = torchrun ? "WORLD_SIZE" : "SLURM_NTASKS";
  const char* local_name = torchrun ? "LOCAL_RANK" : "SLURM_LOCALID";
  ASSIGN_OR_RETURN(std::optional<int64_t> rank, IntVariable(getenv, rank_name, 0, kMaxRanks));
  if (!rank.has_value()) return std::optional<WorldSettings>();
  ASSIGN_OR_RETURN(std::optional<int64_t> size, IntVariable(getenv, size_name, 1, kMaxRanks));
  if (!size.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(rank_name, "=", *rank, " is set but ", size_name,
                     " is not; a worker needs both to know its place in the job"));
  }
  if (*rank >= *size) {
    return absl::InvalidArgumentError(absl::StrCat(rank_name, "=", *rank, " is not below ",
                                                   size_name, "=", *size));
  }
  if (*size == 1) return std::optional<WorldSettings>();
  world.rank = static_cast<int>(*rank);
  world.world_size = static_cast<int>(*size);
  ASSIGN_OR_RETURN(std::optional<int64_t> local, IntVariable(getenv, local_name, 0, kMaxRanks));
  world.local_rank = static_cast<int>(local.value_or(0));

  const char* addr = getenv("MASTER_ADDR");
  if (addr != nullptr && *addr != '\0') {
    world.master_addr = addr;
  } else if (torchrun) {
    return absl::InvalidArgumentError(
        "RANK and WORLD_SIZE are set but MASTER_ADDR is not: the workers cannot find the "
        "rendezvous (torchrun sets all three)");
  } else {
    const char* nodes = getenv("SLURM_JOB_NODELIST");
    if (nodes == nullptr || *nodes == '\0') nodes = getenv("SLURM_NODELIST");
    if (nodes == nullptr || *nodes == '\0') {
      return absl::InvalidArgumentError(
          "SLURM_PROCID is set but neither MASTER_ADDR nor SLURM_JOB_NODELIST is: no host to "
          "rendezvous on");
    }
    world.master_addr = FirstSlurmHost(nodes);
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> port, IntVariable(getenv, "MASTER_PORT", 1, 65535));
  world.master_port = static_cast<int>(port.value_or(29500));
  const char* agent = getenv("TORCHELASTIC_USE_AGENT_STORE");
  world.agent_hosts_store =
      agent != nullptr && absl::AsciiStrToLower(std::string(agent)) == "true";
  ASSIGN_OR_RETURN(std::optional<int64_t> timeout,
                   IntVariable(getenv, "SAELAB_DIST_TIMEOUT_SECONDS", 1, 7 * 24 * 3600));
  if (timeout.has_value()) world.timeout = absl::Seconds(*timeout);
  return std::optional<WorldSettings>(world);
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::Connect(const WorldSettings& world) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(world.master_port);
  options.isServer = world.rank == 0 && !world.agent_hosts_store;
  options.numWorkers = world.world_size;
  options.waitWorkers = true;
  options.timeout = absl::ToChronoMilliseconds(world.timeout);
  c10::intrusive_ptr<c10d::Store> store;
  try {
    store = c10::make_intrusive<c10d::TCPStore>(world.master_addr, options);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(
        "rank ", world.rank, " of ", world.world_size, ": no rendezvous at ", world.master_addr,
        ":", world.master_port, " within ", absl::FormatDuration(world.timeout), ": ", e.what()));
  }
  return OverStore(std::move(store), world.rank, world.world_size, world.timeout,
                   IsLoopback(world.master_addr));
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::OverStore(
    c10::intrusive_ptr<c10d::Store> store, int rank, int world_size, absl::Duration timeout,
    bool loopback) {
  std::unique_ptr<Communicator> comm(new Communicator);
  comm->rank_ = rank;
  comm->world_size_ = world_size;
  comm->store_ = store;
  RETURN_IF_ERROR(comm->Guard("the Gloo rendezvous", [&] {
    auto options = c10d::ProcessGroupGloo::Options::create(absl::ToChronoMilliseconds(timeout));
    // As torch.distributed picks it: GLOO_SOCKET_IFNAME, else the interface
    // this host's name resolves to (loopback for a one-machine job).
    const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
    if (interface != nullptr && *interface != '\0') {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
    } else if (loopback) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    comm->group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size, options);
  }));
  return comm;
}

Communicator::~Communicator() = default;

absl::Status Communicator::Guard(const char* what, const std::function<void()>& op) {
  try {
    op();
  } catch (const std::exception& e) {
    std::string message = e.what();
    // c10::Error appends a C++ backtrace; its first line is the message.
    if (const size_t cut = message.find("\nException raised from"); cut != std::string::npos) {
      message.resize(cut);
    }
    return absl::UnavailableError(absl::StrCat("rank ", rank_, " of ", world_size_, ": ", what,
                                               " failed (a peer died, or stopped answering "
                                               "within the timeout): ",
                                               message));
  }
  return absl::OkStatus();
}

absl::StatusOr<c10d::ProcessGroup*> Communicator::GroupFor(const torch::Tensor& t) {
  if (!t.defined() || !t.is_cuda()) return group_.get();
#ifdef SAELAB_WITH_NCCL
  if (!nccl_group_) {
    // Created on the first CUDA collective, which every rank reaches in
    // the same order; its rendezvous keys live under "nccl/" in the store.
    RETURN_IF_ERROR(Guard("the NCCL rendezvous", [&] {
      nccl_group_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(
          c10::make_intrusive<c10d::PrefixStore>("nccl", store_), rank_, world_size_,
          c10d::ProcessGroupNCCL::Options::create());
    }));
  }
  return nccl_group_.get();
#else
  return absl::FailedPreconditionError(absl::StrCat(
      "rank ", rank_, ": a collective on ", t.device().str(),
      " tensors needs NCCL; this build has Gloo only (build with --config=cuda and "
      "LIBTORCH_DIR at a CUDA LibTorch)"));
#endif
}

absl::Status Communicator::AllReduceSum(std::vector<torch::Tensor>& tensors) {
  for (torch::Tensor& t : tensors) {
    if (t.numel() == 0) continue;
    ASSIGN_OR_RETURN(c10d::ProcessGroup* group, GroupFor(t));
    RETURN_IF_ERROR(Guard("all-reduce", [&] {
      c10d::AllreduceOptions options;
      options.reduceOp = c10d::ReduceOp::SUM;
      // c10d's list is one tensor per device of a process: one call each.
      std::vector<torch::Tensor> one = {t};
      group->allreduce(one, options)->wait();
    }));
  }
  return absl::OkStatus();
}

absl::StatusOr<double> Communicator::AllReduceSum(double value) {
  std::vector<torch::Tensor> one = {torch::tensor(value, torch::kFloat64)};
  RETURN_IF_ERROR(AllReduceSum(one));
  return one[0].item<double>();
}

absl::StatusOr<torch::Tensor> Communicator::AllGather(const torch::Tensor& local) {
  std::vector<int64_t> shape = {world_size_};
  for (int64_t s : local.sizes()) shape.push_back(s);
  torch::Tensor out = torch::empty(shape, local.options());
  ASSIGN_OR_RETURN(c10d::ProcessGroup* group, GroupFor(local));
  RETURN_IF_ERROR(Guard("all-gather", [&] {
    std::vector<std::vector<torch::Tensor>> outputs(1);
    for (int r = 0; r < world_size_; ++r) outputs[0].push_back(out[r]);
    std::vector<torch::Tensor> inputs = {local.contiguous()};
    group->allgather(outputs, inputs)->wait();
  }));
  return out;
}

absl::StatusOr<torch::Tensor> Communicator::AllGatherRagged(const torch::Tensor& local) {
  if (local.dim() < 1) {
    return absl::InvalidArgumentError("AllGatherRagged: the local tensor needs a first dimension");
  }
  ASSIGN_OR_RETURN(torch::Tensor lengths,
                   AllGather(torch::tensor({local.size(0)}, torch::kInt64)));  // [world, 1]
  const std::vector<int64_t> counts(lengths.data_ptr<int64_t>(),
                                    lengths.data_ptr<int64_t>() + world_size_);
  const int64_t longest = *std::max_element(counts.begin(), counts.end());
  // Nothing anywhere (every rank sees the same lengths): no second gather.
  if (longest == 0) return local.clone();
  std::vector<int64_t> padded_shape = local.sizes().vec();
  padded_shape[0] = longest;
  torch::Tensor padded = torch::zeros(padded_shape, local.options());
  padded.narrow(0, 0, local.size(0)).copy_(local);
  ASSIGN_OR_RETURN(torch::Tensor stacked, AllGather(padded));  // [world, longest, ...]
  std::vector<torch::Tensor> parts;
  for (int r = 0; r < world_size_; ++r) parts.push_back(stacked[r].narrow(0, 0, counts[r]));
  return torch::cat(parts, 0);
}

absl::StatusOr<torch::Tensor> Communicator::Gather(const torch::Tensor& local, int root) {
  torch::Tensor out;
  ASSIGN_OR_RETURN(c10d::ProcessGroup* group, GroupFor(local));
  RETURN_IF_ERROR(Guard("gather", [&] {
    std::vector<std::vector<torch::Tensor>> outputs;
    if (rank_ == root) {
      std::vector<int64_t> shape = {world_size_};
      for (int64_t s : local.sizes()) shape.push_back(s);
      out = torch::empty(shape, local.options());
      outputs.emplace_back();
      for (int r = 0; r < world_size_; ++r) outputs[0].push_back(out[r]);
    }
    std::vector<torch::Tensor> inputs = {local.contiguous()};
    c10d::GatherOptions options;
    options.rootRank = root;
    group->gather(outputs, inputs, options)->wait();
  }));
  return out;
}

absl::Status Communicator::Broadcast(std::vector<torch::Tensor>& tensors, int root) {
  for (torch::Tensor& t : tensors) {
    if (t.numel() == 0) continue;  // the same shapes on every rank
    ASSIGN_OR_RETURN(c10d::ProcessGroup* group, GroupFor(t));
    RETURN_IF_ERROR(Guard("broadcast", [&] {
      c10d::BroadcastOptions options;
      options.rootRank = root;
      // Gloo broadcasts one tensor per call.
      std::vector<torch::Tensor> one = {t};
      group->broadcast(one, options)->wait();
    }));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Communicator::BroadcastString(const std::string& value, int root) {
  // Through the store: a key per call, so successive broadcasts never read
  // a stale value.
  const std::string key = absl::StrCat("saelab/broadcast/", string_broadcasts_++);
  std::string out;
  RETURN_IF_ERROR(Guard("string broadcast", [&] {
    if (rank_ == root) {
      store_->set(key, std::vector<uint8_t>(value.begin(), value.end()));
      out = value;
    } else {
      const std::vector<uint8_t> bytes = store_->get(key);  // waits up to the timeout
      out.assign(bytes.begin(), bytes.end());
    }
  }));
  return out;
}

absl::Status Communicator::Barrier() {
  return Guard("barrier", [&] { group_->barrier()->wait(); });
}

absl::Status RankZeroFirst(Communicator* comm, const std::function<absl::Status()>& work) {
  if (comm == nullptr || comm->world_size() == 1) return work();
  if (comm->rank() == 0) RETURN_IF_ERROR(work());
  RETURN_IF_ERROR(comm->Barrier());
  if (comm->rank() != 0) RETURN_IF_ERROR(work());
  return absl::OkStatus();
}

void SetProcessCommunicator(Communicator* communicator) { process_communicator = communicator; }

Communicator* ProcessCommunicator() { return process_communicator; }

}  // namespace saelab
