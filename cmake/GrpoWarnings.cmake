# Warning flags shared by every grpo target; GRPO_WERROR (CI) turns them into errors.
add_library(grpo_warnings INTERFACE)
target_compile_options(grpo_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow=local -Wnon-virtual-dtor>)
if(GRPO_WERROR)
  target_compile_options(grpo_warnings INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
endif()
# GCC 12-13 report -Wrestrict inside libstdc++'s std::string::insert at -O3 when a C++20 build
# (a PyTorch 2.x LibTorch asks for one) inlines it: a false positive (GCC bug 105651).
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12
   AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 14)
  target_compile_options(grpo_warnings INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Wno-restrict>)
endif()

# grpo_layer(NAME SOURCES... [TORCH] [DEPS ...]): one static library per layer of
# docs/architecture.md. TORCH marks the layers allowed to see LibTorch; they get the
# shared precompiled header so that 2-core builds stay fast.
function(grpo_layer name)
  cmake_parse_arguments(L "TORCH" "" "SOURCES;DEPS" ${ARGN})
  add_library(grpo_${name} STATIC ${L_SOURCES})
  add_library(grpo::${name} ALIAS grpo_${name})
  target_include_directories(grpo_${name} PUBLIC ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(grpo_${name} PUBLIC ${L_DEPS} PRIVATE grpo_warnings)
  set_target_properties(grpo_${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  if(L_TORCH)
    target_link_libraries(grpo_${name} PUBLIC grpo_torch)
    target_precompile_headers(grpo_${name} REUSE_FROM grpo_torch_pch)
  endif()
endfunction()
