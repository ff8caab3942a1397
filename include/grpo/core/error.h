// grpo::Error and the GRPO_CHECK family: every failure below main() throws one of these, with
// the message for the user plus the file:line and condition that failed, for developers.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace grpo {

// How the CLI reacts: usage and config errors exit 2, everything else exits 1.
enum class ErrorKind { runtime, usage, config };

class Error : public std::runtime_error {
 public:
  explicit Error(std::string message, ErrorKind kind = ErrorKind::runtime, const char* file = "",
                 int line = 0, const char* condition = "")
      : std::runtime_error(std::move(message)),
        kind_(kind),
        file_(file),
        line_(line),
        condition_(condition) {}

  ErrorKind kind() const { return kind_; }
  const char* file() const { return file_; }
  int line() const { return line_; }
  const char* condition() const { return condition_; }

 private:
  ErrorKind kind_;
  const char* file_;
  int line_;
  const char* condition_;
};

namespace detail {
template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  return out.str();
}
}  // namespace detail

}  // namespace grpo

// GRPO_CHECK(cond, "message ", value, ...): throws grpo::Error (runtime) when cond is false.
#define GRPO_CHECK(cond, ...)                                                              \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      throw ::grpo::Error(::grpo::detail::concat(__VA_ARGS__), ::grpo::ErrorKind::runtime, \
                          __FILE__, __LINE__, #cond);                                      \
    }                                                                                      \
  } while (0)

// GRPO_CHECK_KIND(kind, cond, ...): the same with an explicit ErrorKind (usage, config).
#define GRPO_CHECK_KIND(kind, cond, ...)                                                          \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      throw ::grpo::Error(::grpo::detail::concat(__VA_ARGS__), ::grpo::ErrorKind::kind, __FILE__, \
                          __LINE__, #cond);                                                       \
    }                                                                                             \
  } while (0)

// GRPO_FAIL(...): unconditional runtime error.
#define GRPO_FAIL(...)                                                                           \
  throw ::grpo::Error(::grpo::detail::concat(__VA_ARGS__), ::grpo::ErrorKind::runtime, __FILE__, \
                      __LINE__, "")
