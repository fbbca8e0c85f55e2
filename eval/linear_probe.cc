#include "eval/linear_probe.h"

#include <linear.h>
#include <torch/nn/functional.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"

namespace saelab {
namespace {

// Mean logistic cross-entropy per column: softplus(z) - y z, [N, m] -> [m].
torch::Tensor MeanCrossEntropy(const torch::Tensor& z, const torch::Tensor& y) {
  return (torch::nn::functional::softplus(z) - y * z).mean(0);
}

void Quiet(const char*) {}

}  // namespace

PerLatentProbes FitPerLatentProbes(const torch::Tensor& train_features,
                                   const torch::Tensor& train_labels,
                                   const torch::Tensor& test_features,
                                   const torch::Tensor& test_labels, double l2,
                                   int64_t column_chunk) {
  torch::NoGradGuard no_grad;
  const int64_t m = train_features.size(1);
  const torch::Tensor y = train_labels.to(torch::kFloat64).unsqueeze(1);  // [N, 1]
  const torch::Tensor y_test = test_labels.to(torch::kFloat64).unsqueeze(1);
  const double prior = std::clamp(y.mean().item<double>(), 1e-6, 1 - 1e-6);
  PerLatentProbes out;
  std::vector<torch::Tensor> weights, biases, train_ce, test_ce, test_acc;
  for (int64_t begin = 0; begin < m; begin += column_chunk) {
    const int64_t end = std::min(m, begin + column_chunk);
    const torch::Tensor x_raw = train_features.slice(1, begin, end).to(torch::kFloat64);
    // Newton on standardised columns (l2 acts on the standardised weight);
    // constant columns keep w = 0.
    const torch::Tensor scale = x_raw.std(0, /*unbiased=*/false);
    const torch::Tensor inverse = torch::where(scale > 0, 1.0 / scale, torch::zeros_like(scale));
    const torch::Tensor x = x_raw * inverse;
    const int64_t cols = end - begin;
    torch::Tensor w = torch::zeros({cols}, torch::kFloat64);
    torch::Tensor b = torch::full({cols}, std::log(prior / (1 - prior)), torch::kFloat64);
    auto loss_of = [&](const torch::Tensor& w_, const torch::Tensor& b_) {
      return MeanCrossEntropy(x * w_ + b_, y) + 0.5 * l2 * w_ * w_;
    };
    torch::Tensor loss = loss_of(w, b);
    for (int iteration = 0; iteration < 40; ++iteration) {
      const torch::Tensor p = torch::sigmoid(x * w + b);
      const torch::Tensor r = p - y;
      const torch::Tensor s = p * (1 - p);
      const torch::Tensor g_w = (r * x).mean(0) + l2 * w;
      const torch::Tensor g_b = r.mean(0);
      const torch::Tensor h_ww = (s * x * x).mean(0) + l2;
      const torch::Tensor h_wb = (s * x).mean(0);
      const torch::Tensor h_bb = s.mean(0) + 1e-12;
      const torch::Tensor det = h_ww * h_bb - h_wb * h_wb;
      const torch::Tensor step_w = (h_bb * g_w - h_wb * g_b) / det;
      const torch::Tensor step_b = (h_ww * g_b - h_wb * g_w) / det;
      // Backtracking per column: halve the step where the loss would rise.
      torch::Tensor t = torch::ones({cols}, torch::kFloat64);
      torch::Tensor new_w, new_b, new_loss;
      for (int halving = 0; halving < 30; ++halving) {
        new_w = w - t * step_w;
        new_b = b - t * step_b;
        new_loss = loss_of(new_w, new_b);
        const torch::Tensor worse = new_loss > loss;
        if (!worse.any().item<bool>()) break;
        t = torch::where(worse, t * 0.5, t);
      }
      const torch::Tensor accept = new_loss <= loss;
      const double moved =
          torch::where(accept, (t * step_w).abs() + (t * step_b).abs(), torch::zeros_like(t))
              .max()
              .item<double>();
      w = torch::where(accept, new_w, w);
      b = torch::where(accept, new_b, b);
      loss = torch::where(accept, new_loss, loss);
      // Newton converges quadratically: a step this small leaves an error
      // of its square.
      if (moved < 1e-7) break;
    }
    const torch::Tensor w_units = w * inverse;  // back to the columns' units
    weights.push_back(w_units);
    biases.push_back(b);
    train_ce.push_back(MeanCrossEntropy(x_raw * w_units + b, y));
    const torch::Tensor z_test = test_features.slice(1, begin, end).to(torch::kFloat64) * w_units + b;
    test_ce.push_back(MeanCrossEntropy(z_test, y_test));
    test_acc.push_back(((z_test > 0).to(torch::kFloat64) == y_test).to(torch::kFloat64).mean(0));
  }
  out.weight = torch::cat(weights);
  out.bias = torch::cat(biases);
  out.train_cross_entropy = torch::cat(train_ce);
  out.test_cross_entropy = torch::cat(test_ce);
  out.test_accuracy = torch::cat(test_acc);
  return out;
}

torch::Tensor LinearClassifier::DecisionValues(const torch::Tensor& x) const {
  torch::Tensor d = torch::matmul(x.to(torch::kFloat64), weight.t()) + bias;  // [N, rows]
  return classes == 2 ? d.select(1, 0) : d;
}

torch::Tensor LinearClassifier::Predict(const torch::Tensor& x) const {
  const torch::Tensor d = DecisionValues(x);
  return classes == 2 ? (d > 0).to(torch::kLong) : d.argmax(1);
}

int64_t LinearClassifier::FeaturesUsed() const {
  return (weight != 0).any(0).sum().item<int64_t>();
}

absl::StatusOr<LinearClassifier> FitLogisticRegression(const torch::Tensor& x,
                                                       const torch::Tensor& labels,
                                                       const LogisticOptions& options) {
  if (x.dim() != 2 || labels.dim() != 1 || x.size(0) != labels.size(0) || x.size(0) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "logistic regression: need features [N >= 1, d] and labels [N], got ",
        x.dim() == 2 ? absl::StrCat("[", x.size(0), ", ", x.size(1), "]") : "a non-matrix",
        " and ", labels.dim() == 1 ? absl::StrCat("[", labels.size(0), "]") : "a non-vector"));
  }
  if (!(options.c > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("logistic regression: C must be > 0, got ",
                                                   options.c));
  }
  const torch::Tensor y = labels.to(torch::kLong).contiguous();
  if (y.min().item<int64_t>() < 0) {
    return absl::InvalidArgumentError("logistic regression: negative class label");
  }
  const int64_t classes = std::max<int64_t>(2, y.max().item<int64_t>() + 1);
  const torch::Tensor counts = torch::bincount(y, {}, classes);
  for (int64_t c = 0; c < classes; ++c) {
    if (counts[c].item<int64_t>() == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "logistic regression: class ", c, " has no training example (", x.size(0),
          " examples over ", classes, " classes); a probe needs every class"));
    }
  }
  const int64_t n = x.size(0), d = x.size(1);
  torch::Tensor features = x.to(torch::kFloat64).contiguous();
  torch::Tensor scale = torch::ones({d}, torch::kFloat64);
  if (options.standardize) {
    const torch::Tensor sd = features.std(0, /*unbiased=*/false);
    scale = torch::where(sd > 0, 1.0 / sd, torch::zeros_like(sd));
    features = (features * scale).contiguous();
  }
  // liblinear takes sparse rows: the non-zeros, then the bias feature
  // (index d + 1, value 1), then a terminator.
  std::vector<std::vector<feature_node>> rows(n);
  std::vector<feature_node*> row_pointers(n);
  std::vector<double> targets(n);
  const double* data = features.data_ptr<double>();
  const int64_t* label = y.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) {
      const double v = data[i * d + j];
      if (v != 0) rows[i].push_back({static_cast<int>(j + 1), v});
    }
    rows[i].push_back({static_cast<int>(d + 1), 1.0});
    rows[i].push_back({-1, 0.0});
    row_pointers[i] = rows[i].data();
    targets[i] = static_cast<double>(label[i]);
  }
  problem prob;
  prob.l = static_cast<int>(n);
  prob.n = static_cast<int>(d + 1);
  prob.y = targets.data();
  prob.x = row_pointers.data();
  prob.bias = 1.0;
  parameter param{};
  param.solver_type = options.penalty == Penalty::kL1 ? L1R_LR : L2R_LR;
  param.eps = options.tolerance;
  param.C = options.c;
  param.nr_weight = 0;
  param.p = 0.1;
  param.init_sol = nullptr;
  if (const char* error = check_parameter(&prob, &param)) {
    return absl::InvalidArgumentError(absl::StrCat("liblinear: ", error));
  }
  // liblinear's global print hook and rand() state: one fit at a time.
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  set_print_string_function(&Quiet);
  std::srand(options.seed);
  model* fitted = train(&prob, &param);
  std::unique_ptr<model, void (*)(model*)> owner(fitted, [](model* m) {
    free_and_destroy_model(&m);
  });
  LinearClassifier out;
  out.classes = classes;
  const int64_t rows_out = classes == 2 ? 1 : classes;
  out.weight = torch::zeros({rows_out, d}, torch::kFloat64);
  out.bias = torch::zeros({rows_out}, torch::kFloat64);
  std::vector<int> model_labels(get_nr_class(fitted));
  get_labels(fitted, model_labels.data());
  for (int64_t r = 0; r < rows_out; ++r) {
    const int wanted = classes == 2 ? 1 : static_cast<int>(r);
    const int label_index = static_cast<int>(
        std::find(model_labels.begin(), model_labels.end(), wanted) - model_labels.begin());
    for (int64_t j = 0; j < d; ++j) {
      out.weight[r][j] = get_decfun_coef(fitted, static_cast<int>(j + 1), label_index);
    }
    out.bias[r] = get_decfun_bias(fitted, label_index);
  }
  out.weight = out.weight * scale;  // back to the features' own units
  return out;
}

double RocAuc(const torch::Tensor& scores, const torch::Tensor& labels) {
  const torch::Tensor s = scores.to(torch::kFloat64).contiguous();
  const torch::Tensor y = labels.to(torch::kLong).contiguous();
  const int64_t n = s.numel();
  const int64_t positives = y.sum().item<int64_t>(), negatives = n - positives;
  if (positives == 0 || negatives == 0) return 0.5;
  // Mid-ranks over ties, then Mann-Whitney U.
  const torch::Tensor order = s.argsort();
  const double* sv = s.data_ptr<double>();
  const int64_t* yv = y.data_ptr<int64_t>();
  const int64_t* ov = order.data_ptr<int64_t>();
  double positive_rank_sum = 0;
  for (int64_t i = 0; i < n;) {
    int64_t j = i;
    while (j + 1 < n && sv[ov[j + 1]] == sv[ov[i]]) ++j;
    const double mid_rank = 0.5 * static_cast<double>(i + j) + 1.0;
    for (int64_t k = i; k <= j; ++k) {
      if (yv[ov[k]] == 1) positive_rank_sum += mid_rank;
    }
    i = j + 1;
  }
  const double p = static_cast<double>(positives), q = static_cast<double>(negatives);
  return (positive_rank_sum - p * (p + 1) / 2) / (p * q);
}

ClassifierScores ScoreBinary(const torch::Tensor& decision, const torch::Tensor& labels) {
  const torch::Tensor predicted = (decision > 0).to(torch::kLong);
  const torch::Tensor y = labels.to(torch::kLong);
  ClassifierScores scores;
  scores.accuracy = (predicted == y).to(torch::kFloat64).mean().item<double>();
  scores.auc = RocAuc(decision, y);
  const double tp = (predicted * y).sum().item<double>();
  const double fp = (predicted * (1 - y)).sum().item<double>();
  const double fn = ((1 - predicted) * y).sum().item<double>();
  scores.f1 = tp > 0 ? 2 * tp / (2 * tp + fp + fn) : 0.0;
  return scores;
}

}  // namespace saelab
