// Logging facade over spdlog. Code in the LibTorch layers must log through these functions and
// never include spdlog itself: PyTorch 2.x ships its own fmt, which shadows the fmt that
// Debian's spdlog was built against (see docs/architecture.md). Messages are streamed:
//   grpo::log::info("loaded ", n, " tensors from ", path);
#pragma once

#include <string>

#include "grpo/core/error.h"

namespace grpo::log {

enum class Level { trace, debug, info, warn, error, off };

// "trace" | "debug" | "info" | "warn" | "error" | "off"; anything else throws grpo::Error (usage).
void set_level(const std::string& level);
bool enabled(Level level);
void write(Level level, const std::string& message);
// Sends log lines to stderr instead of stdout (for verbs whose stdout is data, such as a JSON
// summary); the level is kept.
void use_stderr();

template <class... Args>
void trace(Args&&... args) {
  if (enabled(Level::trace)) write(Level::trace, detail::concat(std::forward<Args>(args)...));
}
template <class... Args>
void debug(Args&&... args) {
  if (enabled(Level::debug)) write(Level::debug, detail::concat(std::forward<Args>(args)...));
}
template <class... Args>
void info(Args&&... args) {
  if (enabled(Level::info)) write(Level::info, detail::concat(std::forward<Args>(args)...));
}
template <class... Args>
void warn(Args&&... args) {
  if (enabled(Level::warn)) write(Level::warn, detail::concat(std::forward<Args>(args)...));
}
template <class... Args>
void error(Args&&... args) {
  if (enabled(Level::error)) write(Level::error, detail::concat(std::forward<Args>(args)...));
}

}  // namespace grpo::log
