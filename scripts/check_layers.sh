#!/usr/bin/env bash
# Enforces the include rules of docs/architecture.md on tracked sources:
#  - core, data, text, reward and kernels never include LibTorch (torch/, ATen/, c10/);
#  - LibTorch layers (dist ops model rollout algo train) and the CLI never include spdlog or fmt:
#    PyTorch 2.x ships its own fmt, which breaks Debian's spdlog; they log via grpo/core/log.h.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
files() { git ls-files "$@" 2>/dev/null; }
check() {  # check <pattern> <message> <paths...>
  local pattern=$1 message=$2
  shift 2
  local hits
  hits=$(files "$@" | xargs -r grep -nE "$pattern" || true)
  if [ -n "$hits" ]; then
    echo "layering: $message"
    echo "$hits"
    status=1
  fi
}
torch_free=(include/grpo/core src/core include/grpo/data src/data include/grpo/text src/text
            include/grpo/reward src/reward kernels)
torch_layers=(include/grpo/dist src/dist include/grpo/ops src/ops include/grpo/model src/model
              include/grpo/rollout src/rollout include/grpo/algo src/algo include/grpo/train
              src/train src/cli include/grpo/torch_compat.h)
check '^\s*#\s*include\s*[<"](torch|ATen|c10)/' "LibTorch included below the LibTorch line:" "${torch_free[@]}"
check '^\s*#\s*include\s*[<"](spdlog|fmt)/' "spdlog/fmt included in a LibTorch layer (use grpo/core/log.h):" "${torch_layers[@]}"
[ $status -eq 0 ] && echo "layering: ok"
exit $status
