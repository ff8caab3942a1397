// Finds and loads libgrpo_sentencepiece (sp_shim.h) with RTLD_LOCAL | RTLD_DEEPBIND, once per
// process: its symbols, and the protobuf inside libsentencepiece, stay out of the global scope.
#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <string>

#include "grpo/core/error.h"
#include "sp_shim.h"

namespace grpo::text {

const GrpoSpApi& sentencepiece_api() {
  static std::once_flag once;
  static const GrpoSpApi* api = nullptr;
  static std::string failure;
  std::call_once(once, [] {
    // GRPO_SENTENCEPIECE_MODULE overrides the build-tree path (for a relocated install).
    const char* override_path = std::getenv("GRPO_SENTENCEPIECE_MODULE");
    const std::string path = override_path ? override_path : GRPO_SENTENCEPIECE_MODULE_PATH;
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (handle == nullptr) {
      failure = "cannot load the SentencePiece module " + path + ": " + dlerror();
      return;
    }
    using Entry = const GrpoSpApi* (*)();
    auto entry = reinterpret_cast<Entry>(dlsym(handle, "grpo_sentencepiece_api"));
    if (entry == nullptr) {
      failure = path + " has no grpo_sentencepiece_api";
      return;
    }
    api = entry();
  });
  GRPO_CHECK(api != nullptr, failure);
  return *api;
}

}  // namespace grpo::text
