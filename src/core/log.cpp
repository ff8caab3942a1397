// spdlog behind the grpo::log facade (the only place LibTorch-free code and LibTorch code meet
// spdlog through a compiled boundary).
#include "grpo/core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace grpo::log {
namespace {

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::trace:
      return spdlog::level::trace;
    case Level::debug:
      return spdlog::level::debug;
    case Level::info:
      return spdlog::level::info;
    case Level::warn:
      return spdlog::level::warn;
    case Level::error:
      return spdlog::level::err;
    case Level::off:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

}  // namespace

void set_level(const std::string& level) {
  static const std::pair<const char*, Level> kLevels[] = {
      {"trace", Level::trace}, {"debug", Level::debug}, {"info", Level::info},
      {"warn", Level::warn},   {"error", Level::error}, {"off", Level::off}};
  for (const auto& [name, value] : kLevels) {
    if (level == name) {
      spdlog::set_level(to_spdlog(value));
      return;
    }
  }
  GRPO_CHECK_KIND(usage, false, "unknown log level '", level,
                  "'; expected one of trace, debug, info, warn, error, off");
}

bool enabled(Level level) { return spdlog::should_log(to_spdlog(level)); }

void use_stderr() {
  // Unnamed like the default logger, so the lines look the same.
  auto logger =
      std::make_shared<spdlog::logger>("", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  logger->set_level(spdlog::default_logger()->level());
  spdlog::set_default_logger(logger);
}

void write(Level level, const std::string& message) {
  spdlog::log(to_spdlog(level), "{}", message);
}

}  // namespace grpo::log
