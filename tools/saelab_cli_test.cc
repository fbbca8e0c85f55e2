// The `saelab` binary end to end, as a user runs it (a child process, exit
// status, stdout, stderr), each command checked against an independent
// computation: training's reported metrics against `evaluate` on the saelab,
// SAELens and re-imported copies; sparsify import against the numpy
// fixture's reconstructions; harvested rows against the model's own forward
// to each hook; tokenize against GPT-2's published ids and byte-identical
// decoding; every refusal's exit status and one-line message.
#include <sched.h>
#include <torch/types.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "data/activations/activation_files.h"
#include "data/subject_model/gpt2_model.h"
#include "data/subject_model/hooks.h"
#include "data/subject_model/text_generation.h"
#include "data/text/bpe_tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"
#include "harness/internal/child_process.h"
#include "harness/npy.h"
#include "harness/result.pb.h"
#include "harness/safetensors.h"
#include "harness/sha256.h"
#include "harness/textproto.h"
#include "sae/checkpoint.h"
#include "sae/sae.h"
#include "sae/sae_config.pb.h"
#include "tools/command.h"

namespace saelab {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kRefModel[] = "data/models/saelab-ref-lm";
constexpr char kSparsifyFixture[] = "sae/interchange/testdata/sparsify_fixture";

std::string Dir(const std::string& name) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/", name);
  EXPECT_TRUE(MakeDirs(dir).ok());
  return dir;
}

// Runs `saelab <args>` in a shell; stdout and stderr captured.
CommandResult Saelab(const std::string& args) {
  return RunCommand(absl::StrCat(Runfile("tools/saelab"), " ", args));
}

// The last line of stderr (the error line of a failed command).
std::string LastLine(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  return lines.empty() ? "" : lines.back();
}

ExperimentResult ReadResult(const std::string& path) {
  ExperimentResult result;
  absl::Status status = ReadBinaryProtoFile(path, &result);
  EXPECT_TRUE(status.ok()) << status;
  return result;
}

// Sparse non-negative combinations of 96 random unit directions in 24
// dimensions: data a TopK SAE can learn in a few hundred steps.
std::string WriteSyntheticActivations(const std::string& dir) {
  torch::manual_seed(0);
  torch::Tensor dirs = torch::randn({96, 24});
  dirs = dirs / dirs.norm(2, 1, true);
  const torch::Tensor idx = torch::randint(0, 96, {6000, 3});
  const torch::Tensor coef = torch::rand({6000, 3, 1}) + 0.5;
  const torch::Tensor x = (coef * dirs.index({idx})).sum(1).contiguous();
  const std::string path = dir + "/acts.npy";
  EXPECT_TRUE(AtomicWriteFile(path, *SerializeNpy(x)).ok());
  return path;
}

int CpusOfThisProcess() {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  return CPU_COUNT(&set);
}

void ExpectSameMetrics(const SaeResult& got, const SaeResult& want, double rtol,
                       const std::string& what) {
  for (const char* metric : {"nmse", "fvu", "mse", "l0", "dead_fraction"}) {
    const double a = got.metrics().at(metric), b = want.metrics().at(metric);
    EXPECT_NEAR(a, b, rtol * std::max(1e-12, std::abs(b))) << what << " " << metric;
  }
}

TEST(SaelabCliTest, TrainExportImportEvaluateReproduceTheTrainingRunsMetrics) {
  const std::string dir = Dir("train");
  const std::string acts = WriteSyntheticActivations(dir);
  const std::string out = dir + "/sae";
  CommandResult train =
      Saelab(absl::StrCat("train --activations=", acts, " --out=", out,
                          " --architecture=topk --k=3 --n_latents=96 --tokens=100000"
                          " --batch_size=500 --eval_rows=-1000: --seed=4"));
  ASSERT_EQ(train.exit_code, 0) << train.err;
  EXPECT_THAT(train.out, HasSubstr("held-out rows [5000, 6000)"));
  const ExperimentResult trained = ReadResult(out + "/result.pb");
  ASSERT_EQ(trained.saes_size(), 1);
  const SaeResult& reported = trained.saes(0);
  EXPECT_EQ(reported.eval_tokens(), 1000);
  // Learned, not a constant: far below the nmse of predicting 0 (1.0).
  EXPECT_LT(reported.metrics().at("nmse"), 0.5);
  EXPECT_EQ(trained.provenance().root_seed(), 4u);
  ASSERT_EQ(trained.provenance().inputs_size(), 1);
  EXPECT_EQ(trained.provenance().inputs(0).sha256(), *Sha256File(acts));
  // LibTorch's intra-op pool runs on every CPU this process may use (the
  // binary sets OMP_NUM_THREADS when the environment does not).
  if (std::getenv("OMP_NUM_THREADS") == nullptr) {
    EXPECT_EQ(trained.provenance().torch_threads(), CpusOfThisProcess());
  }

  // The saelab copy gives the same bits; the SAELens copy (input scale
  // folded into the weights) and its re-import agree to float32 rounding.
  CommandResult same = Saelab(absl::StrCat("evaluate --sae=", out, " --activations=", acts,
                                           " --rows=5000: --out=", dir, "/same.pb"));
  ASSERT_EQ(same.exit_code, 0) << same.err;
  ExpectSameMetrics(ReadResult(dir + "/same.pb").saes(0), reported, 0, "saelab layout");

  CommandResult exported = Saelab(absl::StrCat("export --sae=", out, " --out=", dir, "/lens"));
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  CommandResult imported = Saelab(absl::StrCat("import --in=", dir, "/lens --out=", dir, "/back"));
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  for (const std::string sae : {out + "/saelens", dir + "/lens", dir + "/back"}) {
    CommandResult eval = Saelab(absl::StrCat("evaluate --sae=", sae, " --activations=", acts,
                                             " --rows=-1000: --out=", dir, "/eval.textproto"));
    ASSERT_EQ(eval.exit_code, 0) << eval.err;
    ExperimentResult result;
    ASSERT_TRUE(ParseTextProtoFile(dir + "/eval.textproto", &result).ok());
    ExpectSameMetrics(result.saes(0), reported, 1e-5, sae);
  }

  // Rerunning finds the SAE and trains nothing; inspect shows the metrics.
  CommandResult again =
      Saelab(absl::StrCat("train --activations=", acts, " --out=", out,
                          " --architecture=topk --k=3 --n_latents=96 --tokens=100000"
                          " --batch_size=500 --eval_rows=-1000: --seed=4"));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(again.out, HasSubstr("was already trained"));
  // Data-parallel over 2 local workers: the same SAE to float rounding.
  CommandResult parallel =
      Saelab(absl::StrCat("train --activations=", acts, " --out=", dir,
                          "/parallel --architecture=topk --k=3 --n_latents=96"
                          " --tokens=100000 --batch_size=500 --eval_rows=-1000:"
                          " --seed=4 --nproc=2"));
  ASSERT_EQ(parallel.exit_code, 0) << parallel.err;
  const ExperimentResult parallel_result = ReadResult(dir + "/parallel/result.pb");
  EXPECT_EQ(parallel_result.provenance().data_parallel_ranks(), 2);
  if (std::getenv("OMP_NUM_THREADS") == nullptr) {  // each worker: an equal share
    EXPECT_EQ(parallel_result.provenance().torch_threads(), std::max(1, CpusOfThisProcess() / 2));
  }
  ExpectSameMetrics(parallel_result.saes(0), reported, 1e-3, "--nproc=2");
  // The latents split over 2 workers instead of the batch: the same SAE.
  CommandResult sharded = Saelab(absl::StrCat("train --activations=", acts, " --out=", dir,
                                              "/sharded --architecture=topk --k=3 --n_latents=96"
                                              " --tokens=100000 --batch_size=500 --eval_rows=-1000:"
                                              " --seed=4 --nproc=2 --shard_latents"));
  ASSERT_EQ(sharded.exit_code, 0) << sharded.err;
  ExpectSameMetrics(ReadResult(dir + "/sharded/result.pb").saes(0), reported, 1e-3,
                    "--shard_latents");
  // The saved SAE supersedes the shards' checkpoints.
  EXPECT_FALSE(PathExists(dir + "/sharded/shard_states"));
  CommandResult alone =
      Saelab(absl::StrCat("train --activations=", acts, " --out=", dir, "/alone --shard_latents"));
  EXPECT_EQ(alone.exit_code, 2);
  EXPECT_THAT(alone.err, HasSubstr("--shard_latents splits the latents over workers"));
  CommandResult refused = Saelab(absl::StrCat("inspect --dir=", out, " --nproc=2"));
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_THAT(refused.err, HasSubstr("--nproc is for `saelab train`"));

  CommandResult other =
      Saelab(absl::StrCat("train --activations=", acts, " --out=", out, " --k=4"));
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_THAT(other.err, HasSubstr("already holds an SAE trained with another config"));
  CommandResult inspect = Saelab(absl::StrCat("inspect --dir=", out));
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_THAT(inspect.out, HasSubstr("topk SAE 'topk' in saelab's layout: d_in 24, n_latents 96"));
  EXPECT_THAT(inspect.out,
              HasSubstr(absl::StrFormat("  %-28s %.9g\n", "nmse", reported.metrics().at("nmse"))));
}

TEST(SaelabCliTest, SparsifyImportReconstructsLikeSparsify) {
  const std::string dir = Dir("sparsify");
  CommandResult imported =
      Saelab(absl::StrCat("import --in=", kSparsifyFixture, " --out=", dir, "/sae"));
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_THAT(imported.out, HasSubstr("from sparsify's layout"));
  const std::string expected = absl::StrCat(kSparsifyFixture, "/expected.safetensors");
  CommandResult eval = Saelab(absl::StrCat("evaluate --sae=", dir, "/sae --activations=", expected,
                                           " --tensor=x --out=", dir, "/eval.pb"));
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  // The fixture's numpy reconstruction (sparsify's formulas in float64).
  SafetensorsContents fixture = *ReadSafetensors(expected);
  const torch::Tensor x = fixture.tensors.at("x").to(torch::kDouble);
  const torch::Tensor x_hat = fixture.tensors.at("sae_out").to(torch::kDouble);
  const double nmse = ((x - x_hat).pow(2).sum() / x.pow(2).sum()).item<double>();
  const double l0 =
      (fixture.tensors.at("feature_acts") != 0).sum(1).to(torch::kDouble).mean().item<double>();
  const SaeResult got = ReadResult(dir + "/eval.pb").saes(0);
  EXPECT_NEAR(got.metrics().at("nmse"), nmse, 1e-5 * nmse);
  EXPECT_DOUBLE_EQ(got.metrics().at("l0"), l0);
}

TEST(SaelabCliTest, HarvestsTwoHooksInOnePassAsTheModelComputesThem) {
  const std::string dir = Dir("harvest");
  std::string long_text;
  for (int i = 0; i < 60; ++i) {
    absl::StrAppend(&long_text, "The king went to the river ", i, " times, and the people said ",
                    "that he would come again in the morning.\n");
  }
  ASSERT_TRUE(AtomicWriteFile(dir + "/a.txt", long_text).ok());
  ASSERT_TRUE(AtomicWriteFile(dir + "/b.txt", "A second, short document.").ok());
  const std::string hooks = "blocks.0.hook_resid_post,blocks.1.hook_mlp_out";
  CommandResult harvest = Saelab(absl::StrCat(
      "harvest --model_dir=", kRefModel, " --text=", dir, "/a.txt,", dir, "/b.txt --hooks=", hooks,
      " --context_length=32 --batch_contexts=7 --out=", dir, "/npy"));
  ASSERT_EQ(harvest.exit_code, 0) << harvest.err;
  CommandResult store = Saelab(absl::StrCat(
      "harvest --model_dir=", kRefModel, " --text=", dir, "/a.txt,", dir, "/b.txt --hooks=", hooks,
      " --context_length=32 --format=store --out=", dir, "/store"));
  ASSERT_EQ(store.exit_code, 0) << store.err;

  absl::StatusOr<Gpt2Model> model = Gpt2Model::LoadHfDirectory(kRefModel);
  ASSERT_TRUE(model.ok()) << model.status();
  const torch::Tensor tokens = ReadNpyTensor(dir + "/npy/tokens.npy")->to(torch::kLong);
  ASSERT_EQ(tokens.size(1), 32);
  // Every context starts with the tokenizer's <|endoftext|>.
  const int64_t eos = *BpeTokenizer::FromDir(kRefModel)->eos_id();
  EXPECT_TRUE(tokens.index({torch::indexing::Slice(), 0}).eq(eos).all().item<bool>());
  torch::NoGradGuard no_grad;
  for (const std::string hook : {"blocks.0.hook_resid_post", "blocks.1.hook_mlp_out"}) {
    absl::StatusOr<ActivationFiles> npy = ActivationFiles::Open(dir + "/npy/" + hook + ".npy");
    ASSERT_TRUE(npy.ok()) << npy.status();
    ASSERT_EQ(npy->rows(), tokens.size(0) * 31);
    // The model's own forward to the hook, all contexts at once, first
    // position dropped.
    const torch::Tensor want =
        model->RunToHook(tokens, *ParseHookName(hook, 2))->slice(1, 1).reshape({-1, 128});
    const torch::Tensor got = *npy->Rows({0, npy->rows()});
    EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-5)) << hook;
    absl::StatusOr<ActivationFiles> stored = ActivationFiles::Open(dir + "/store/" + hook);
    ASSERT_TRUE(stored.ok()) << stored.status();
    EXPECT_TRUE(torch::allclose(*stored->Rows({0, stored->rows()}), want, 1e-5, 1e-5)) << hook;
  }
  // A store trains like a file.
  CommandResult train = Saelab(
      absl::StrCat("train --activations=", dir, "/store/blocks.0.hook_resid_post",
                   " --k=4 --n_latents=64 --tokens=4096 --batch_size=256 --out=", dir, "/sae"));
  ASSERT_EQ(train.exit_code, 0) << train.err;

  // Spliced into the model: the losses against a splice written here, on
  // the model's logits directly.
  CommandResult spliced = Saelab(absl::StrCat(
      "evaluate --sae=", dir, "/sae --activations=", dir, "/npy/blocks.0.hook_resid_post.npy",
      " --model_dir=", kRefModel, " --hook=blocks.0.hook_resid_post --contexts=", dir,
      "/npy/tokens.npy --eval_contexts=-1 --out=", dir, "/downstream.pb"));
  ASSERT_EQ(spliced.exit_code, 0) << spliced.err;
  const SaeResult got = ReadResult(dir + "/downstream.pb").saes(0);
  absl::StatusOr<std::unique_ptr<Sae>> sae = LoadSae(dir + "/sae");
  ASSERT_TRUE(sae.ok()) << sae.status();
  // Next-token loss at positions 1..L-2 (of tokens 2..L-1), BOS never
  // spliced nor scored.
  auto loss = [&](const torch::Tensor& logits) {
    const torch::Tensor logp = torch::log_softmax(logits.slice(1, 1, -1).to(torch::kDouble), -1);
    const torch::Tensor targets = tokens.slice(1, 2).unsqueeze(-1);
    return -logp.gather(-1, targets).mean().item<double>();
  };
  HookSet splice;
  splice.hooks["blocks.0.hook_resid_post"] = [&](const torch::Tensor& a) {
    torch::Tensor out = a.clone();
    const torch::Tensor rows = a.slice(1, 1).reshape({-1, a.size(2)});
    out.slice(1, 1).copy_((*sae)->Reconstruct(rows).reshape(a.slice(1, 1).sizes()));
    return out;
  };
  const double ce_clean = loss(*model->Forward(tokens));
  const double ce_spliced = loss(*model->Forward(tokens, splice));
  EXPECT_NEAR(got.metrics().at("ce_clean"), ce_clean, 1e-5 * ce_clean);
  EXPECT_NEAR(got.metrics().at("ce_spliced"), ce_spliced, 1e-5 * ce_spliced);
  EXPECT_GT(ce_spliced, ce_clean);
}

TEST(SaelabCliTest, TokenizeAndDecodeAreExactInverses) {
  const std::string dir = Dir("tokenize");
  const std::string text = "Hello world\xff\xfe caf\xc3\xa9 <|endoftext|>\n\t  x";
  ASSERT_TRUE(AtomicWriteFile(dir + "/t.txt", text).ok());
  for (const char* ext : {"npy", "json"}) {
    CommandResult encode =
        Saelab(absl::StrCat("tokenize --in=", dir, "/t.txt --out=", dir, "/ids.", ext));
    ASSERT_EQ(encode.exit_code, 0) << encode.err;
    CommandResult decode = Saelab(
        absl::StrCat("tokenize --decode --in=", dir, "/ids.", ext, " --out=", dir, "/back.txt"));
    ASSERT_EQ(decode.exit_code, 0) << decode.err;
    EXPECT_EQ(*ReadFile(dir + "/back.txt"), text) << ext;
  }
  // GPT-2 encodes "Hello world" as 15496, 995 (OpenAI's encoder).
  const torch::Tensor ids = *ReadNpyTensor(dir + "/ids.npy");
  EXPECT_EQ(ids.scalar_type(), torch::kInt);
  EXPECT_EQ(ids[0].item<int>(), 15496);
  EXPECT_EQ(ids[1].item<int>(), 995);
  EXPECT_THAT(*ReadFile(dir + "/ids.json"), StartsWith("[15496, 995, "));
  ASSERT_TRUE(AtomicWriteFile(dir + "/bad.json", "[1, 2, 99999]").ok());
  CommandResult bad =
      Saelab(absl::StrCat("tokenize --decode --in=", dir, "/bad.json --out=", dir, "/x.txt"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("bad.json: token 2 is id 99999, outside the vocabulary"));
}

TEST(SaelabCliTest, GenerateMatchesTheLibrary) {
  CommandResult run = Saelab(
      absl::StrCat("generate --model_dir=", kRefModel, " --prompt='The king' --max_new_tokens=8"));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  TextGenerationOptions options;
  options.prompt = "The king";
  options.max_new_tokens = 8;
  absl::StatusOr<GeneratedText> want = GenerateText(kRefModel, options);
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_EQ(run.out, want->text + "\n");
}

TEST(SaelabCliTest, HelpAndRefusals) {
  CommandResult help = Saelab("--help");
  EXPECT_EQ(help.exit_code, 0);
  CommandResult train_help = Saelab("train --help");
  EXPECT_EQ(train_help.exit_code, 0);
  EXPECT_THAT(train_help.out, StartsWith("usage: saelab train --activations=FILE --out=DIR"));
  EXPECT_THAT(train_help.out, HasSubstr("  --threads=N  (default 0)"));
  // Every command is listed and has a synopsis and an example (checked on
  // the table the binary prints from, rather than starting it eight times).
  for (const Command& command : AllCommands()) {
    EXPECT_THAT(help.out, HasSubstr(absl::StrCat("  ", command.name, " ")));
    EXPECT_THAT(command.usage, StartsWith("saelab " + command.name)) << command.name;
    EXPECT_THAT(command.usage, HasSubstr("Example")) << command.name;
    for (const FlagSpec& flag : command.flags) EXPECT_FALSE(flag.help.empty()) << flag.name;
  }

  // serve: the SAEs come from exactly one of --saes and --run_dir.
  CommandResult serve_neither = Saelab(absl::StrCat("serve --model_dir=", kRefModel));
  EXPECT_EQ(serve_neither.exit_code, 2);
  EXPECT_THAT(LastLine(serve_neither.err), HasSubstr("give either --saes or --run_dir"));
  CommandResult serve_bad = Saelab(absl::StrCat("serve --model_dir=", kRefModel, " --saes=nohook"));
  EXPECT_EQ(serve_bad.exit_code, 2);
  EXPECT_THAT(LastLine(serve_bad.err), HasSubstr("\"nohook\" is not HOOK=DIR"));
  CommandResult serve_negative =
      Saelab(absl::StrCat("serve --model_dir=", kRefModel,
                          " --saes=blocks.0.hook_resid_post=x --dashboard_contexts=-1"));
  EXPECT_EQ(serve_negative.exit_code, 2);
  EXPECT_THAT(LastLine(serve_negative.err), HasSubstr("--dashboard_contexts must be >= 0"));
  CommandResult serve_long =
      Saelab(absl::StrCat("serve --model_dir=", kRefModel,
                          " --saes=blocks.0.hook_resid_post=x --dashboard_context_length=1"));
  EXPECT_EQ(serve_long.exit_code, 2);
  EXPECT_THAT(LastLine(serve_long.err), HasSubstr("--dashboard_context_length must be in [2, "));
  CommandResult serve_empty =
      Saelab(absl::StrCat("serve --model_dir=", kRefModel, " --run_dir=", ::testing::TempDir()));
  EXPECT_EQ(serve_empty.exit_code, 1);
  EXPECT_THAT(LastLine(serve_empty.err), HasSubstr("--run_dir: cannot list"));

  const std::string dir = Dir("refusals");
  const std::string acts = WriteSyntheticActivations(dir);
  ASSERT_TRUE(
      AtomicWriteFile(dir + "/ids.npy", *SerializeNpy(torch::zeros({4, 24}, torch::kInt))).ok());
  ASSERT_TRUE(WriteSafetensors(dir + "/acts.safetensors", {{"resid", torch::zeros({8, 24})}}).ok());
  ASSERT_TRUE(AtomicWriteFile(dir + "/wide.npy", *SerializeNpy(torch::zeros({8, 40}))).ok());
  CommandResult trained =
      Saelab(absl::StrCat("train --activations=", acts, " --out=", dir,
                          "/sae --n_latents=32 --k=2 --tokens=2000 --batch_size=500"));
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  // A config file, with a flag overriding one of its fields.
  ASSERT_TRUE(AtomicWriteFile(dir + "/relu.textproto",
                              "name: \"mine\" n_latents: 32 relu_l1 { l1_coefficient: 3 }\n"
                              "trainer { total_tokens: 2000 batch_size: 500 }\n")
                  .ok());
  CommandResult configured =
      Saelab(absl::StrCat("train --activations=", acts, " --config=", dir,
                          "/relu.textproto --sparsity_coefficient=2 --out=", dir, "/relu"));
  ASSERT_EQ(configured.exit_code, 0) << configured.err;
  SaeConfig as_trained;
  ASSERT_TRUE(ParseTextProtoFile(dir + "/relu/sae_config.textproto", &as_trained).ok());
  EXPECT_EQ(as_trained.name(), "mine");
  EXPECT_EQ(as_trained.relu_l1().l1_coefficient(), 2);
  EXPECT_EQ(as_trained.trainer().total_tokens(), 2000);

  const struct {
    std::string args;
    int exit_code;
    std::string message;
  } cases[] = {
      {"frobnicate", 2, "saelab: unknown command 'frobnicate'"},
      {"train --out=x", 2, "saelab train: error: --activations is required"},
      {"train --activations=a.npy --out=x --k=2.5", 2, "flag --k='2.5' is not an integer"},
      {"train --activations=a.npy --out=x --epochs=3", 2, "unknown flag --epochs"},
      {absl::StrCat("train --activations=", dir, "/absent.npy --out=", dir, "/o1"), 1,
       dir + "/absent.npy: No such file or directory"},
      {absl::StrCat("train --activations=", dir, "/ids.npy --out=", dir, "/o2"), 1,
       dir + "/ids.npy: not a usable .npy file: dtype '<i4'"},
      {absl::StrCat("train --activations=", dir, "/acts.safetensors --tensor=mlp --out=", dir,
                    "/o3"),
       1, dir + "/acts.safetensors: no tensor 'mlp'; the file holds: resid"},
      {absl::StrCat("evaluate --sae=", dir, "/sae --activations=", dir, "/wide.npy"), 1,
       dir + "/wide.npy: the activations are 40-wide, the SAE in " + dir +
           "/sae reads 24 (d_in mismatch)"},
      {absl::StrCat("evaluate --sae=", dir, " --activations=", acts), 1,
       dir + ": not an SAE directory"},
  };
  for (const auto& c : cases) {
    CommandResult run = Saelab(c.args);
    EXPECT_EQ(run.exit_code, c.exit_code) << c.args << "\n" << run.err;
    // One line, naming the problem.
    EXPECT_EQ(LastLine(run.err), absl::StripTrailingAsciiWhitespace(run.err)) << c.args;
    EXPECT_THAT(run.err, HasSubstr(c.message)) << c.args;
  }
  // Nothing was written for the refused runs.
  for (const char* out : {"/o1", "/o2", "/o3"}) EXPECT_FALSE(PathExists(dir + out)) << out;
}

}  // namespace
}  // namespace saelab
