// The viewer tests' session: the reference model with two random TopK SAEs
// (256 latents, k 8) at blocks.1.hook_resid_post ("a") and
// blocks.2.hook_mlp_out ("b"). The test needs //data/models:saelab_ref_lm.
#ifndef SAELAB_TOOLS_VIEWER_INTERNAL_TEST_SESSION_H_
#define SAELAB_TOOLS_VIEWER_INTERNAL_TEST_SESSION_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "tools/viewer/viewer_session.h"

namespace saelab {

inline constexpr char kTestModelDir[] = "data/models/saelab-ref-lm";

// A TopK SAE over d 128 with 256 latents, k 8, random weights from `seed`.
std::unique_ptr<Sae> RandomTopKSae(uint64_t seed);

// The session described above; a broken fixture stops the test binary.
ViewerSession TestSession();

// Edits of latents only.
ViewEdits LatentEdits(std::vector<PromptEdit> latents);

}  // namespace saelab

#endif  // SAELAB_TOOLS_VIEWER_INTERNAL_TEST_SESSION_H_
