// The C interface of libgrpo_sentencepiece, a small module that wraps libsentencepiece. Debian's
// libsentencepiece carries its own protobuf 3.14 with exported symbols, which clash with the
// protobuf 3.21 that LibTorch loads; the text layer therefore dlopen()s this module with
// RTLD_LOCAL | RTLD_DEEPBIND so that each library keeps its own protobuf.
#pragma once

#include <cstddef>

extern "C" {

typedef void (*GrpoSpBytesSink)(void* ctx, const char* data, std::size_t size);
typedef void (*GrpoSpIdsSink)(void* ctx, const int* ids, std::size_t count);
// Gives the next training text: 1 (data/size set), 0 at the end, -1 on error (stops training).
typedef int (*GrpoSpNextText)(void* ctx, const char** data, std::size_t* size);

enum GrpoSpKind { kGrpoSpControl = 1, kGrpoSpUnknown = 2, kGrpoSpByte = 4, kGrpoSpUnused = 8 };

struct GrpoSpApi {
  // A processor, or null with the reason sent to `error`.
  void* (*load)(const char* path, GrpoSpBytesSink error, void* error_ctx);
  void (*release)(void* processor);
  int (*piece_size)(const void* processor);
  // which: 0 unk, 1 bos, 2 eos, 3 pad; -1 when the model has none.
  int (*special_id)(const void* processor, int which);
  int (*kind)(const void* processor, int id);  // GrpoSpKind bits
  // The piece's bytes stay valid as long as the processor.
  const char* (*id_to_piece)(const void* processor, int id, std::size_t* size);
  int (*piece_to_id)(const void* processor, const char* piece, std::size_t size);
  // 0 on success; the ids go to `sink`, a failure's reason to `error`.
  int (*encode)(const void* processor, const char* text, std::size_t size, GrpoSpIdsSink sink,
                void* ctx, GrpoSpBytesSink error, void* error_ctx);
  int (*decode)(const void* processor, const int* ids, std::size_t count, GrpoSpBytesSink sink,
                void* ctx);
  // Trains from key=value options and a stream of texts; the serialized model goes to `model`.
  int (*train)(const char* const* keys, const char* const* values, std::size_t count,
               GrpoSpNextText next, void* next_ctx, GrpoSpBytesSink model, void* model_ctx,
               GrpoSpBytesSink error, void* error_ctx);
};

// The one symbol the text layer looks up.
const GrpoSpApi* grpo_sentencepiece_api();
}

namespace grpo::text {
// Loads the module once (path fixed at build time, or GRPO_SENTENCEPIECE_MODULE); throws with
// dlerror() when it cannot.
const GrpoSpApi& sentencepiece_api();
}  // namespace grpo::text
