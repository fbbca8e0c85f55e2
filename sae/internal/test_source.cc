#include "sae/internal/test_source.h"

#include <utility>

namespace saelab {

std::unique_ptr<SyntheticFeatureSource> SmallSyntheticSource() {
  SyntheticDataConfig data;
  data.set_d(16);
  data.set_n_features(48);
  data.set_mean_active_features(3);
  data.set_eval_tokens(64);
  return std::move(SyntheticFeatureSource::Create(data, 11).value());
}

}  // namespace saelab
