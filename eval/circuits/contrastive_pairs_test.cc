#include "eval/circuits/contrastive_pairs.h"

#include <torch/types.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "eval/internal/test_models.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace saelab {
namespace {

class ContrastivePairsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = ReferenceModel();
    tokenizer_ = ReferenceTokenizer();
  }
  std::optional<Gpt2Model> model_;
  std::optional<BpeTokenizer> tokenizer_;
};

// Each pair, re-found in its document independently: the prompt is the
// document's tokens ending at the subject, the next token is the answer,
// and the patch prompt swaps only the subject.
TEST_F(ContrastivePairsTest, PairsAreTheCorpusTextWithTheSubjectSwapped) {
  for (const std::string& name : BuiltinCircuitTaskNames()) {
    absl::StatusOr<CircuitTaskConfig> task = BuiltinCircuitTask(name);
    ASSERT_TRUE(task.ok()) << task.status();
    absl::StatusOr<ContrastivePairs> pairs = BuildContrastivePairs(*task, *tokenizer_, Split::kVal);
    ASSERT_TRUE(pairs.ok()) << pairs.status();
    ASSERT_GE(pairs->size(), 32) << name;
    absl::StatusOr<Corpus> corpus = LoadCorpus(task->corpus());
    ASSERT_TRUE(corpus.ok()) << corpus.status();
    const int64_t context = task->context_tokens();
    ASSERT_EQ(pairs->clean.size(1), context + 1);
    for (int64_t p = 0; p < pairs->size(); ++p) {
      const std::vector<std::string> parts = absl::StrSplit(pairs->sources[p], ':');
      ASSERT_EQ(parts.size(), 2u);
      int64_t index;
      ASSERT_TRUE(absl::SimpleAtoi(parts[1], &index));
      const Document* document = nullptr;
      for (const Document& d : corpus->documents) {
        if (d.id == parts[0]) document = &d;
      }
      ASSERT_NE(document, nullptr) << parts[0];
      EXPECT_EQ(SplitOf(document->id), Split::kVal);
      const std::vector<int32_t> ids = tokenizer_->Encode(document->text);
      EXPECT_EQ(pairs->clean[p][0].item<int64_t>(), *tokenizer_->eos_id());
      for (int64_t t = 0; t < context; ++t) {
        EXPECT_EQ(pairs->clean[p][t + 1].item<int64_t>(), ids[index - context + 1 + t]);
      }
      EXPECT_EQ(pairs->clean_answer[p].item<int64_t>(), ids[index + 1]);
      EXPECT_TRUE(torch::equal(pairs->clean[p].slice(0, 0, context), pairs->patch[p].slice(0, 0, context)));
      // The swap, read back from the task's strings.
      bool matched = false;
      for (const ContrastiveSwap& swap : task->swaps()) {
        for (const bool forward : {true, false}) {
          const auto id = [&](const std::string& s) { return *tokenizer_->TokenId(s); };
          const int64_t subject = id(forward ? swap.subject() : swap.counter_subject());
          const int64_t answer = id(forward ? swap.answer() : swap.counter_answer());
          const int64_t counter_subject = id(forward ? swap.counter_subject() : swap.subject());
          const int64_t counter_answer = id(forward ? swap.counter_answer() : swap.answer());
          matched |= pairs->clean[p][context].item<int64_t>() == subject &&
                     pairs->clean_answer[p].item<int64_t>() == answer &&
                     pairs->patch[p][context].item<int64_t>() == counter_subject &&
                     pairs->patch_answer[p].item<int64_t>() == counter_answer;
        }
      }
      EXPECT_TRUE(matched) << pairs->sources[p];
    }
  }
}

// The tasks were chosen because the reference model does them: measured on
// the test split (the split circuits are judged on), both prompts of a pair
// get the right answer well above chance (0.5).
TEST_F(ContrastivePairsTest, ReferenceModelDoesTheBuiltinTasks) {
  for (const std::string& name : BuiltinCircuitTaskNames()) {
    absl::StatusOr<CircuitTaskConfig> task = BuiltinCircuitTask(name);
    ASSERT_TRUE(task.ok());
    absl::StatusOr<ContrastivePairs> pairs = BuildContrastivePairs(*task, *tokenizer_, Split::kTest);
    ASSERT_TRUE(pairs.ok()) << pairs.status();
    absl::StatusOr<TaskAccuracy> accuracy = MeasureTaskAccuracy(*model_, *pairs);
    ASSERT_TRUE(accuracy.ok()) << accuracy.status();
    std::printf("%s: %lld pairs, accuracy clean %.3f patch %.3f, logit difference %.3f / %.3f\n",
                name.c_str(), static_cast<long long>(pairs->size()), accuracy->clean,
                accuracy->patch, accuracy->clean_logit_difference,
                accuracy->patch_logit_difference);
    EXPECT_GE(accuracy->clean, 0.8) << name;
    EXPECT_GE(accuracy->patch, 0.8) << name;
  }
}

TEST_F(ContrastivePairsTest, ErrorsNameTheProblem) {
  EXPECT_THAT(BuiltinCircuitTask("nope").status().message(),
              ::testing::HasSubstr("kjv_thou, brown_agreement"));
  absl::StatusOr<CircuitTaskConfig> task = BuiltinCircuitTask("kjv_thou");
  ASSERT_TRUE(task.ok());
  task->mutable_swaps(0)->set_answer(" art art");
  absl::Status status = BuildContrastivePairs(*task, *tokenizer_, Split::kVal).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), ::testing::HasSubstr("\" art art\" is not one token"));
  task = BuiltinCircuitTask("kjv_thou");
  task->mutable_swaps(0)->set_subject(" Zebulun");
  task->mutable_swaps(0)->set_counter_subject(" Zebulun");
  status = BuildContrastivePairs(*task, *tokenizer_, Split::kVal).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
}

}  // namespace
}  // namespace saelab
