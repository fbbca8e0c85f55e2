#include "experiments/train_subject_lm.h"

#include "absl/strings/str_cat.h"
#include "data/subject_model/gpt2_model.h"
#include "data/subject_model/lm_trainer.h"
#include "data/text/bpe_tokenizer.h"
#include "data/text/bpe_trainer.h"
#include "data/text/corpus.h"
#include "data/text/text_dataset.h"
#include "data/text/token_shard.h"
#include "experiments/registry.h"
#include "harness/file_io.h"
#include "harness/log.h"
#include "harness/provenance.h"
#include "harness/sha256.h"
#include "harness/status_macros.h"

namespace saelab {

absl::Status RunTrainSubjectLm(const TrainSubjectLmConfig& config, const std::string& run_dir,
                               SeedTree* seeds, ExperimentResult* result,
                               const TrainSubjectLmOptions& options) {
  Provenance* provenance = result->mutable_provenance();
  LanguageModelResult* lm = result->mutable_language_model();

  PhaseClock clock;
  ASSIGN_OR_RETURN(TextDataset text, LoadTextDataset(config.data()));
  RecordPhase("load_corpora", clock.Seconds(), provenance);

  // The vocabulary is learned from the training split only, so validation
  // text is unseen by every part of the model.
  clock = PhaseClock();
  const std::string model_dir = run_dir + "/model";
  RETURN_IF_ERROR(MakeDirs(model_dir));
  BpeTrainerOptions bpe_options;
  bpe_options.vocab_size = config.vocab_size();
  std::vector<std::string> train_texts = text.Texts(Split::kTrain);
  ASSIGN_OR_RETURN(BpeTokenizer tokenizer, TrainBpe(train_texts, bpe_options));
  train_texts.clear();
  RETURN_IF_ERROR(tokenizer.WriteFiles(model_dir));
  if (!tokenizer.eos_id().has_value()) {
    return absl::InternalError("TrainBpe produced a vocabulary without <|endoftext|>");
  }
  const int32_t eot = *tokenizer.eos_id();
  RecordInput("tokenizer (trained here)", tokenizer.Sha256(), provenance);
  RecordPhase("train_tokenizer", clock.Seconds(), provenance);

  clock = PhaseClock();
  const LmTrainerConfig& trainer = config.trainer();
  ASSIGN_OR_RETURN(PackedSplits splits,
                   PackTrainAndVal(text, tokenizer, run_dir + "/shards/", trainer.context_length(),
                                   /*max_train=*/-1, /*max_val=*/-1, provenance));
  const TokenShard& train_shard = splits.train_shard;
  const TokenShard& val_shard = splits.val_shard;
  const torch::Tensor& train_contexts = splits.train_contexts;
  const torch::Tensor& val_contexts = splits.val_contexts;
  RecordPhase("tokenize", clock.Seconds(), provenance);
  Log("train_subject_lm: vocabulary %d, train %lld tokens (%lld contexts), val %lld tokens "
      "(%lld contexts)",
      tokenizer.vocab_size(), static_cast<long long>(train_shard.num_tokens()),
      static_cast<long long>(train_contexts.size(0)),
      static_cast<long long>(val_shard.num_tokens()), static_cast<long long>(val_contexts.size(0)));

  Gpt2Config shape;
  shape.n_layer = config.model().n_layer();
  shape.n_head = config.model().n_head();
  shape.n_embd = config.model().n_embd();
  shape.n_positions = config.model().n_positions();
  shape.vocab_size = tokenizer.vocab_size();
  shape.bos_token_id = eot;
  shape.eos_token_id = eot;
  ASSIGN_OR_RETURN(Gpt2Model model, Gpt2Model::RandomInit(shape, seeds->Derive("lm/init")));

  clock = PhaseClock();
  LmTrainOptions train_options;
  train_options.dir = run_dir + "/lm_train";
  train_options.stop_after_steps = options.stop_after_steps;
  train_options.label = "train_subject_lm";
  ASSIGN_OR_RETURN(LmTrainResult trained,
                   TrainLanguageModel(trainer, train_contexts, val_contexts,
                                      seeds->Derive("lm/batches"), train_options, &model));
  RecordPhase("train_lm", clock.Seconds(), provenance);
  for (float loss : trained.first_losses) lm->add_first_losses(loss);
  if (!trained.finished) return absl::OkStatus();

  clock = PhaseClock();
  RETURN_IF_ERROR(model.SaveHfDirectory(model_dir));
  // The directory's checksum list: every load verifies the files against it.
  RETURN_IF_ERROR(WriteSha256Sums(
      model_dir, {"config.json", "model.safetensors", "vocab.json", "merges.txt"}));
  ASSIGN_OR_RETURN(std::string model_sha256, Sha256File(model_dir + "/model.safetensors"));
  ASSIGN_OR_RETURN(double val_loss,
                   LanguageModelLoss(model, val_contexts, trainer.batch_contexts()));
  RecordPhase("evaluate", clock.Seconds(), provenance);

  int64_t n_parameters = 0;
  for (const torch::Tensor& param : model.Parameters()) n_parameters += param.numel();
  lm->set_model_dir(model_dir);
  lm->set_model_sha256(model_sha256);
  lm->set_tokenizer_sha256(tokenizer.Sha256());
  lm->set_n_parameters(n_parameters);
  lm->set_vocab_size(tokenizer.vocab_size());
  lm->set_train_tokens(train_shard.num_tokens());
  lm->set_val_tokens(val_shard.num_tokens());
  lm->set_steps(trained.steps);
  lm->set_tokens_trained(trained.steps * trained.tokens_per_step);
  lm->set_val_loss(val_loss);
  lm->set_unigram_val_loss(UnigramLoss(train_contexts, val_contexts, tokenizer.vocab_size()));
  lm->set_uniform_val_loss(std::log(static_cast<double>(tokenizer.vocab_size())));
  lm->set_final_train_loss(trained.final_train_loss);
  lm->set_train_seconds(trained.wall_seconds);
  if (trained.wall_seconds > 0 && !trained.resumed) {
    lm->set_tokens_per_second(static_cast<double>(lm->tokens_trained()) / trained.wall_seconds);
  }
  Series* curve = result->add_series();
  curve->set_name("val loss vs step");
  curve->set_x_label("step");
  curve->set_y_label("validation loss (nats/token)");
  for (const auto& [step, loss] : trained.val_curve) {
    curve->add_x(static_cast<double>(step));
    curve->add_y(loss);
  }
  RecordInput("model.safetensors (trained here)", model_sha256, provenance);
  Log("train_subject_lm: %lld parameters, val loss %.4f (unigram %.4f, uniform %.4f), "
      "model sha256 %s",
      static_cast<long long>(n_parameters), val_loss, lm->unigram_val_loss(),
      lm->uniform_val_loss(), model_sha256.c_str());
  return absl::OkStatus();
}

namespace {
// The registered entry point: the experiment with default options.
absl::Status RunTrainSubjectLmWithDefaults(const TrainSubjectLmConfig& config,
                                           const std::string& run_dir, SeedTree* seeds,
                                           ExperimentResult* result) {
  return RunTrainSubjectLm(config, run_dir, seeds, result);
}
}  // namespace

SAELAB_REGISTER_EXPERIMENT(train_subject_lm, TrainSubjectLmConfig, RunTrainSubjectLmWithDefaults,
                           "results/plot_train_subject_lm.py");

}  // namespace saelab
