# Third-party dependencies, all from Debian packages (scripts/setup.sh) or, for LibTorch on a
# GPU host, from the installed PyTorch: CMAKE_PREFIX_PATH=<the torch package folder>, i.e.
# $(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))'), which finds both its
# TorchConfig.cmake (share/cmake) and its libraries (lib).
find_package(Threads REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json 3.9 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(ZLIB REQUIRED)  # gzip-compressed JSONL (jsonl::Reader)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
find_library(SENTENCEPIECE_TRAIN_LIB sentencepiece_train REQUIRED)

# yaml-cpp 0.7 exports the plain `yaml-cpp` target, newer releases yaml-cpp::yaml-cpp.
if(TARGET yaml-cpp::yaml-cpp)
  set(GRPO_YAML_TARGET yaml-cpp::yaml-cpp)
else()
  set(GRPO_YAML_TARGET yaml-cpp)
endif()

find_package(Torch REQUIRED)
# Headers of one LibTorch with the libraries of another (e.g. Debian's libtorch.so found before a
# PyTorch install's) build but crash at run time: refuse, and say how to fix it.
get_filename_component(_torch_lib_dir "${TORCH_LIBRARY}" DIRECTORY)
get_filename_component(_torch_lib_dir "${_torch_lib_dir}" REALPATH)
get_filename_component(_torch_prefix "${TORCH_INSTALL_PREFIX}" REALPATH)
if(EXISTS "${_torch_prefix}/lib/libtorch.so" AND NOT _torch_lib_dir STREQUAL "${_torch_prefix}/lib")
  message(FATAL_ERROR "LibTorch headers come from ${_torch_prefix} but libtorch.so from "
    "${_torch_lib_dir}. Put the torch package folder itself on CMAKE_PREFIX_PATH: "
    "-DCMAKE_PREFIX_PATH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')")
endif()
message(STATUS "grpo: LibTorch ${Torch_VERSION} from ${_torch_lib_dir}")
# TorchConfig puts its flags (ABI, -D_GLIBCXX_USE_CXX11_ABI) in TORCH_CXX_FLAGS; carry them on
# an interface target so only the LibTorch layers receive them.
add_library(grpo_torch INTERFACE)
target_link_libraries(grpo_torch INTERFACE ${TORCH_LIBRARIES})
# A pip-installed PyTorch finds its CUDA libraries (NCCL, cuDNN, ...) through its own RPATH in
# site-packages/nvidia/*/lib. At link time an older system copy (e.g. the toolkit's libnccl.so.2)
# would win and leave symbols undefined, so point the linker at the same folders.
file(GLOB _torch_nvidia_lib_dirs LIST_DIRECTORIES true "${_torch_prefix}/../nvidia/*/lib")
foreach(_dir IN LISTS _torch_nvidia_lib_dirs)
  target_link_options(grpo_torch INTERFACE "LINKER:-rpath-link,${_dir}")
endforeach()
# PyPI's libtorch.so (2.11) and libtorch_cpu.so export copies of libstdc++'s std::filesystem
# functions. A program's own calls bind to the first library in its NEEDED list that defines a
# symbol, and LibTorch's come before libstdc++'s, so std::filesystem::remove_all ran LibTorch's
# copy, which jumps to a null address (a checkpoint rotation crashed the program). libstdc++ named
# first, whatever the toolchain's --as-needed default, makes the program's calls bind to it.
target_link_options(grpo_torch INTERFACE
  "SHELL:-Wl,--push-state,--no-as-needed -lstdc++ -Wl,--pop-state")
separate_arguments(GRPO_TORCH_FLAGS UNIX_COMMAND "${TORCH_CXX_FLAGS}")
target_compile_options(grpo_torch INTERFACE ${GRPO_TORCH_FLAGS})
# LibTorch's own headers trip -Wpedantic and friends; treat them as system headers.
get_target_property(_torch_inc torch INTERFACE_INCLUDE_DIRECTORIES)
if(_torch_inc)
  target_include_directories(grpo_torch SYSTEM INTERFACE ${_torch_inc})
endif()
set(GRPO_TORCH_HAS_CUDA OFF)
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
  set(GRPO_TORCH_HAS_CUDA ON)
endif()

# One precompiled header shared by every LibTorch layer (ATen and torch/nn are the slow part).
add_library(grpo_torch_pch STATIC ${PROJECT_SOURCE_DIR}/cmake/pch_anchor.cpp)
target_link_libraries(grpo_torch_pch PUBLIC grpo_torch PRIVATE grpo_warnings)
set_target_properties(grpo_torch_pch PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_precompile_headers(grpo_torch_pch PRIVATE <torch/torch.h>)
