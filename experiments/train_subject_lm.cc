#include "experiments/train_subject_lm.h"

#include "absl/strings/str_cat.h"
#include "data/bpe_tokenizer.h"
#include "data/bpe_trainer.h"
#include "data/corpus.h"
#include "data/text_dataset.h"
#include "data/token_shard.h"
#include "eval/gpt2_model.h"
#include "eval/lm_trainer.h"
#include "harness/file_io.h"
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
  for (const Corpus& corpus : text.corpora) {
    RecordInput(absl::StrCat("corpus/", corpus.name, " (", corpus.version, ")"), corpus.sha256,
                provenance);
  }
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
  ASSIGN_OR_RETURN(TokenShard train_shard,
                   TokenizeSplit(text, Split::kTrain, tokenizer, run_dir + "/shards/train.tokshard"));
  ASSIGN_OR_RETURN(TokenShard val_shard,
                   TokenizeSplit(text, Split::kVal, tokenizer, run_dir + "/shards/val.tokshard"));
  RecordInput("token_shard/train", train_shard.sha256(), provenance);
  RecordInput("token_shard/val", val_shard.sha256(), provenance);
  const LmTrainerConfig& trainer = config.trainer();
  // Every context starts with <|endoftext|> as BOS; documents are joined
  // by it too, as GPT-2 was trained.
  ASSIGN_OR_RETURN(torch::Tensor train_contexts,
                   PackContexts(train_shard, trainer.context_length(), eot, eot));
  ASSIGN_OR_RETURN(torch::Tensor val_contexts,
                   PackContexts(val_shard, trainer.context_length(), eot, eot));
  RecordPhase("tokenize", clock.Seconds(), provenance);
  std::fprintf(stderr,
               "train_subject_lm: vocabulary %d, train %lld tokens (%lld contexts), val %lld tokens "
               "(%lld contexts)\n",
               tokenizer.vocab_size(), static_cast<long long>(train_shard.num_tokens()),
               static_cast<long long>(train_contexts.size(0)),
               static_cast<long long>(val_shard.num_tokens()),
               static_cast<long long>(val_contexts.size(0)));

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
  ASSIGN_OR_RETURN(std::string model_sha256, Sha256File(model_dir + "/model.safetensors"));
  ASSIGN_OR_RETURN(double val_loss, LanguageModelLoss(model, val_contexts, trainer.batch_contexts()));
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
  std::fprintf(stderr,
               "train_subject_lm: %lld parameters, val loss %.4f (unigram %.4f, uniform %.4f), "
               "model sha256 %s\n",
               static_cast<long long>(n_parameters), val_loss, lm->unigram_val_loss(),
               lm->uniform_val_loss(), model_sha256.c_str());
  return absl::OkStatus();
}

}  // namespace saelab
