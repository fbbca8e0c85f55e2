// ./bazelw run //examples:sae_on_a_hook -- --model_dir=DIR --text=FILE --out=DIR [--hook=...]
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "examples/sae_on_a_hook.h"

ABSL_FLAG(std::string, model_dir, "", "GPT-2 directory (Hugging Face layout).");
ABSL_FLAG(std::string, text, "", "Text file to collect activations over.");
ABSL_FLAG(std::string, hook, "blocks.0.hook_resid_post", "Hook point (TransformerLens name).");
ABSL_FLAG(std::string, out, "", "Directory for the SAE in SAELens's layout.");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  example::ExampleOptions options;
  options.model_dir = absl::GetFlag(FLAGS_model_dir);
  options.text = absl::GetFlag(FLAGS_text);
  options.hook = absl::GetFlag(FLAGS_hook);
  options.out = absl::GetFlag(FLAGS_out);
  if (options.model_dir.empty() || options.text.empty() || options.out.empty()) {
    std::fprintf(stderr, "error: --model_dir, --text and --out are required\n");
    return 2;
  }
  absl::StatusOr<example::ExampleOutcome> outcome = example::TrainSaeOnHook(options);
  if (!outcome.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(outcome.status().message()).c_str());
    return 1;
  }
  std::printf("trained on %lld rows; held out %lld: nmse %.4f, l0 %.1f; loss %.4f -> %.4f "
              "nats/token with the SAE spliced in; wrote %s\n",
              static_cast<long long>(outcome->train_rows),
              static_cast<long long>(outcome->eval_rows), outcome->nmse, outcome->l0,
              outcome->ce_clean, outcome->ce_spliced, options.out.c_str());
  return 0;
}
