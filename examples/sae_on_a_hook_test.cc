// The example on the committed reference model, checked against what the
// test computes on its own: the clean loss from the model's logits, and the
// held-out NMSE of the SAE as SAELens's files (re-read here) reconstruct.
#include "examples/sae_on_a_hook.h"

#include <torch/types.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data/subject_model/gpt2_model.h"
#include "data/subject_model/hooks.h"
#include "data/text/bpe_tokenizer.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"
#include "sae/interchange/saelens.h"
#include "sae/sae_config.pb.h"

namespace example {
namespace {

constexpr char kModel[] = "data/models/saelab-ref-lm";

TEST(SaeOnAHookTest, TrainsMeasuresAndExportsAsTheTestRecomputes) {
  std::string text;
  for (int i = 0; i < 150; ++i) {
    absl::StrAppend(&text, "And the king said unto the people of the city ", i,
                    ", go ye into the field and gather the corn before the rain.\n");
  }
  const std::string dir = ::testing::TempDir();
  ASSERT_TRUE(saelab::AtomicWriteFile(dir + "/text.txt", text).ok());
  ExampleOptions options;
  options.model_dir = kModel;
  options.text = dir + "/text.txt";
  options.out = dir + "/sae";
  options.context_length = 32;
  options.n_latents = 128;
  options.k = 8;
  options.train_tokens = 60000;
  absl::StatusOr<ExampleOutcome> outcome = TrainSaeOnHook(options);
  ASSERT_TRUE(outcome.ok()) << outcome.status();

  // The same contexts and rows, built here.
  torch::NoGradGuard no_grad;
  absl::StatusOr<saelab::Gpt2Model> model = saelab::Gpt2Model::LoadHfDirectory(kModel);
  ASSERT_TRUE(model.ok());
  absl::StatusOr<saelab::BpeTokenizer> tokenizer = saelab::BpeTokenizer::FromDir(kModel);
  ASSERT_TRUE(tokenizer.ok());
  const std::vector<int32_t> ids = tokenizer->Encode(text);
  const int64_t n = static_cast<int64_t>(ids.size()) / 31, held_out = n - n * 7 / 8;
  torch::Tensor contexts = torch::empty({held_out, 32}, torch::kLong);
  for (int64_t c = 0; c < held_out; ++c) {
    contexts[c][0] = static_cast<int64_t>(*tokenizer->eos_id());
    for (int64_t p = 1; p < 32; ++p) contexts[c][p] = ids[(n * 7 / 8 + c) * 31 + p - 1];
  }
  EXPECT_EQ(outcome->eval_rows, held_out * 31);

  // The exported SAE, read back as SAELens's files.
  saelab::SaeConfig config;
  absl::StatusOr<std::unique_ptr<saelab::Sae>> sae = saelab::ImportSaeLens(options.out, &config);
  ASSERT_TRUE(sae.ok()) << sae.status();
  EXPECT_EQ(config.topk().k(), 8);

  // The model's loss at positions 1..L-2 from its logits, clean and with
  // the SAE's reconstruction replacing the hook's activation after BOS.
  auto loss = [&](const torch::Tensor& logits) {
    const torch::Tensor logp = torch::log_softmax(logits.to(torch::kDouble).slice(1, 1, -1), -1);
    return -logp.gather(-1, contexts.slice(1, 2).unsqueeze(-1)).mean().item<double>();
  };
  saelab::HookSet splice;
  splice.hooks["blocks.0.hook_resid_post"] = [&](const torch::Tensor& a) {
    torch::Tensor out = a.clone();
    out.slice(1, 1).copy_(
        (*sae)->Reconstruct(a.slice(1, 1).reshape({-1, a.size(2)})).reshape(a.slice(1, 1).sizes()));
    return out;
  };
  const double ce_clean = loss(*model->Forward(contexts));
  const double ce_spliced = loss(*model->Forward(contexts, splice));
  EXPECT_NEAR(outcome->ce_clean, ce_clean, 1e-6 * ce_clean);
  // The export folds the input scale into the weights: float32 rounding.
  EXPECT_NEAR(outcome->ce_spliced, ce_spliced, 1e-4 * ce_spliced);

  // And the held-out rows' NMSE.
  const torch::Tensor x =
      model->RunToHook(contexts, {0, saelab::HookPoint::kResidPost})->slice(1, 1).reshape({-1, 128});
  const torch::Tensor x_hat = (*sae)->Reconstruct(x);
  const double nmse =
      ((x - x_hat).to(torch::kDouble).pow(2).sum() / x.to(torch::kDouble).pow(2).sum()).item<double>();
  EXPECT_NEAR(outcome->nmse, nmse, 1e-4 * nmse);
  EXPECT_LT(nmse, 0.5);
}

}  // namespace
}  // namespace example
