// Gold answer text of a record's answer field; see answer_text.h.
#include "grpo/data/answer_text.h"

#include "grpo/core/error.h"

namespace grpo::data {
namespace {

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

std::string scalar_text(const nlohmann::json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

}  // namespace

std::string gold_answer_text(const nlohmann::json& value) {
  if (value.is_null()) return "";
  if (value.is_string()) {
    std::string s = value.get<std::string>();
    const size_t hash = s.rfind("####");
    return hash == std::string::npos ? s : trim(s.substr(hash + 4));
  }
  if (value.is_number() || value.is_boolean()) return value.dump();
  if (value.is_array()) {
    std::string out;
    for (const auto& item : value) {
      GRPO_CHECK(!item.is_structured(), "a list answer must hold strings or numbers, got ",
                 value.dump());
      if (!out.empty()) out += ", ";
      out += scalar_text(item);
    }
    return out;
  }
  GRPO_FAIL("an answer must be a string, a number or a list, got ", value.type_name());
}

}  // namespace grpo::data
