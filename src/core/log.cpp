#include "grpo/core/log.h"

#include <spdlog/spdlog.h>

#include "grpo/core/error.h"

namespace grpo::log {

void set_level(const std::string& level) {
  static const std::pair<const char*, spdlog::level::level_enum> kLevels[] = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
      {"error", spdlog::level::err},   {"off", spdlog::level::off}};
  for (const auto& [name, value] : kLevels) {
    if (level == name) {
      spdlog::set_level(value);
      return;
    }
  }
  GRPO_CHECK_KIND(usage, false, "unknown log level '", level,
                  "'; expected one of trace, debug, info, warn, error, off");
}

}  // namespace grpo::log
