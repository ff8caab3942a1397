// `grpo version`: the grpo version, the LibTorch it was built against, and whether CUDA is
// compiled in and usable right now.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "grpo/dist/process_group.h"
#include "grpo/ops/kernels.h"
#include "grpo/torch_compat.h"
#include "verbs.h"

namespace grpo::cli {

void add_version_verb(CLI::App& app) {
  auto* cmd = app.add_subcommand("version", "Print versions, build options and CUDA availability");
  cmd->callback([] {
    const bool cuda = torch::cuda::is_available();
    std::printf("grpo %s\n", GRPO_VERSION);
    std::printf("libtorch %s\n", TORCH_VERSION);
    std::printf("build type: %s\n", GRPO_BUILD_TYPE);
    std::printf("cuda kernels compiled: %s, linked: %s\n", GRPO_KERNELS_COMPILED ? "yes" : "no",
                GRPO_KERNELS_LINKED ? "yes" : "no");
    std::printf("fused cpu attention: %s\n", ops::cpu_attention_linked() ? "yes" : "no");
    std::printf("gloo backend: %s\n", dist::gloo_available() ? "yes" : "no");
    std::printf("cuda available: %s", cuda ? "yes" : "no");
    if (cuda) std::printf(" (%lld device(s))", static_cast<long long>(compat::cuda_device_count()));
    std::printf("\n");
  });
}

}  // namespace grpo::cli
