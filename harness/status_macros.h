// Status propagation macros. Abseil 20220623 (Debian's) ships none.
//
//   absl::StatusOr<Sae> LoadSae(const std::string& dir) {
//     RETURN_IF_ERROR(CheckDir(dir));
//     ASSIGN_OR_RETURN(std::string bytes, ReadFile(dir + "/sae.safetensors"));
//     ...
//   }
#ifndef SAELAB_HARNESS_STATUS_MACROS_H_
#define SAELAB_HARNESS_STATUS_MACROS_H_

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                                    \
  do {                                                           \
    ::absl::Status saelab_status_ = (expr);                      \
    if (!saelab_status_.ok()) return saelab_status_;             \
  } while (false)

#define SAELAB_STATUS_CONCAT_INNER_(a, b) a##b
#define SAELAB_STATUS_CONCAT_(a, b) SAELAB_STATUS_CONCAT_INNER_(a, b)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status from
// the enclosing function, otherwise moves the value into `lhs`, which may be
// a declaration (`ASSIGN_OR_RETURN(auto x, F());`) or an existing variable.
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  SAELAB_ASSIGN_OR_RETURN_IMPL_(     \
      SAELAB_STATUS_CONCAT_(saelab_statusor_, __LINE__), lhs, rexpr)

#define SAELAB_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                  \
  if (!statusor.ok()) return std::move(statusor).status();  \
  lhs = std::move(statusor).value()

namespace saelab {

// The value held by `value`; on error prints the status to stderr and
// aborts. Only for setup code with no caller to return an error to
// (benchmarks, tools):
//   static const Gpt2Model* model = new Gpt2Model(ValueOrDie(Gpt2Model::RandomInit(c, 1)));
template <typename T>
T ValueOrDie(absl::StatusOr<T> value) {
  if (!value.ok()) {
    std::fprintf(stderr, "fatal: %s\n", value.status().ToString().c_str());
    std::abort();
  }
  return *std::move(value);
}

}  // namespace saelab

#endif  // SAELAB_HARNESS_STATUS_MACROS_H_
