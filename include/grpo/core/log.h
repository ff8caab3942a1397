// Logging goes through spdlog; this header only parses and applies the level names used by
// the config (`logging.level`) and the CLI (`--log-level`).
#pragma once

#include <string>

namespace grpo::log {

// "trace" | "debug" | "info" | "warn" | "error" | "off"; anything else throws grpo::Error.
void set_level(const std::string& level);

}  // namespace grpo::log
