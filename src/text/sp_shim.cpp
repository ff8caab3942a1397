// libgrpo_sentencepiece: libsentencepiece behind the C interface of sp_shim.h. Built as its own
// module and loaded with dlopen (see sp_shim.h for why); nothing here may throw across the
// boundary, so every entry point catches and reports.
#include "sp_shim.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <dlfcn.h>

#include <exception>
#include <iostream>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>

namespace {

using sentencepiece::SentencePieceProcessor;

const SentencePieceProcessor& sp(const void* p) {
  return *static_cast<const SentencePieceProcessor*>(p);
}

void report(GrpoSpBytesSink error, void* ctx, const std::string& message) {
  if (error != nullptr) error(ctx, message.data(), message.size());
}

// Under RTLD_DEEPBIND, libsentencepiece's std::cerr is libstdc++'s own object, but an executable
// that uses std::cerr holds a copy-relocated twin and only that twin is constructed. Build the
// library's object on top of the twin's stream buffer so the library's logging works.
// The executable's twin is found through the main program's handle (RTLD_DEFAULT would search
// this module's deep-bound scope first and find libstdc++'s object again).
void adopt_stream(std::ostream& mine, const char* symbol) {
  void* program = dlopen(nullptr, RTLD_NOW);
  auto* global = static_cast<std::ostream*>(dlsym(program, symbol));
  if (global != nullptr && global != &mine) new (&mine) std::ostream(global->rdbuf());
}

void adopt_streams() {
  static std::once_flag once;
  std::call_once(once, [] {
    adopt_stream(std::cout, "_ZSt4cout");
    adopt_stream(std::cerr, "_ZSt4cerr");
    adopt_stream(std::clog, "_ZSt4clog");
  });
}

void* load(const char* path, GrpoSpBytesSink error, void* error_ctx) {
  adopt_streams();
  try {
    auto* p = new SentencePieceProcessor();
    const auto status = p->Load(path);
    if (status.ok()) return p;
    report(error, error_ctx, status.ToString());
    delete p;
  } catch (const std::exception& e) {
    report(error, error_ctx, e.what());
  }
  return nullptr;
}

void release(void* p) { delete static_cast<SentencePieceProcessor*>(p); }

int piece_size(const void* p) { return sp(p).GetPieceSize(); }

int special_id(const void* p, int which) {
  switch (which) {
    case 0:
      return sp(p).unk_id();
    case 1:
      return sp(p).bos_id();
    case 2:
      return sp(p).eos_id();
    default:
      return sp(p).pad_id();
  }
}

int kind(const void* p, int id) {
  return (sp(p).IsControl(id) ? kGrpoSpControl : 0) | (sp(p).IsUnknown(id) ? kGrpoSpUnknown : 0) |
         (sp(p).IsByte(id) ? kGrpoSpByte : 0) | (sp(p).IsUnused(id) ? kGrpoSpUnused : 0);
}

const char* id_to_piece(const void* p, int id, std::size_t* size) {
  const std::string& piece = sp(p).IdToPiece(id);
  *size = piece.size();
  return piece.data();
}

int piece_to_id(const void* p, const char* piece, std::size_t size) {
  return sp(p).PieceToId(absl::string_view(piece, size));
}

int encode(const void* p, const char* text, std::size_t size, GrpoSpIdsSink sink, void* ctx,
           GrpoSpBytesSink error, void* error_ctx) {
  std::vector<int> ids;
  const auto status = sp(p).Encode(absl::string_view(text, size), &ids);
  if (!status.ok()) {
    report(error, error_ctx, status.ToString());
    return 1;
  }
  sink(ctx, ids.data(), ids.size());
  return 0;
}

int decode(const void* p, const int* ids, std::size_t count, GrpoSpBytesSink sink, void* ctx) {
  std::string text;
  const auto status = sp(p).Decode(std::vector<int>(ids, ids + count), &text);
  if (!status.ok()) return 1;
  sink(ctx, text.data(), text.size());
  return 0;
}

class Texts : public sentencepiece::SentenceIterator {
 public:
  Texts(GrpoSpNextText next, void* ctx) : next_(next), ctx_(ctx) { Next(); }
  bool done() const override { return done_; }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override {
    if (!failed_) return {};
    return sentencepiece::util::Status(sentencepiece::util::StatusCode::kInternal,
                                       "reading the training texts failed");
  }
  void Next() override {
    const char* data = nullptr;
    std::size_t size = 0;
    const int rc = next_(ctx_, &data, &size);
    if (rc == 1) {
      value_.assign(data, size);
    } else {
      done_ = true;
      failed_ = rc < 0;
    }
  }

 private:
  GrpoSpNextText next_;
  void* ctx_;
  std::string value_;
  bool done_ = false, failed_ = false;
};

int train(const char* const* keys, const char* const* values, std::size_t count,
          GrpoSpNextText next, void* next_ctx, GrpoSpBytesSink model, void* model_ctx,
          GrpoSpBytesSink error, void* error_ctx) {
  adopt_streams();
  try {
    std::unordered_map<std::string, std::string> args;
    for (std::size_t i = 0; i < count; ++i) args[keys[i]] = values[i];
    Texts texts(next, next_ctx);
    std::string serialized;
    const auto status = sentencepiece::SentencePieceTrainer::Train(args, &texts, &serialized);
    if (!status.ok()) {
      report(error, error_ctx, status.ToString());
      return 1;
    }
    model(model_ctx, serialized.data(), serialized.size());
    return 0;
  } catch (const std::exception& e) {
    report(error, error_ctx, e.what());
    return 1;
  }
}

const GrpoSpApi kApi = {load,        release,     piece_size, special_id, kind,
                        id_to_piece, piece_to_id, encode,     decode,     train};

}  // namespace

extern "C" __attribute__((visibility("default"))) const GrpoSpApi* grpo_sentencepiece_api() {
  return &kApi;
}
