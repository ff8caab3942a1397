// safetensors reader and writer (no LibTorch): memory-mapped, validated reading of single and
// sharded checkpoints (model.safetensors.index.json), and atomic writes (temp + fsync + rename).
// Format: 8-byte little-endian header length N, N bytes of JSON, then the raw tensor bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace grpo::safetensors {

enum class DType { f32, f16, bf16, i64, i32, i8, u8, boolean };

size_t dtype_size(DType dtype);
// The format's spelling: "F32", "F16", "BF16", "I64", "I32", "I8", "U8", "BOOL".
const char* dtype_name(DType dtype);

// One tensor's entry in a file header. Offsets are relative to the start of the data buffer.
struct TensorInfo {
  std::string name;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  size_t begin = 0;
  size_t end = 0;

  int64_t numel() const;
  size_t nbytes() const { return end - begin; }
};

// One memory-mapped .safetensors file, validated on open. Tensor data pointers stay valid while
// the File lives; they may be unaligned (the format does not promise alignment).
class File {
 public:
  explicit File(const std::string& path);
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::string& path() const { return path_; }
  // Sorted by name.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // nullptr when absent.
  const TensorInfo* find(const std::string& name) const;
  // Throws naming the file and the tensor when absent.
  const TensorInfo& at(const std::string& name) const;
  const uint8_t* data(const TensorInfo& info) const { return data_ + info.begin; }

 private:
  void parse_header(size_t file_size);

  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the tensor byte buffer
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

// A tensor found in a checkpoint: its header entry, its bytes and the file that holds it.
struct TensorView {
  const TensorInfo* info = nullptr;
  const uint8_t* data = nullptr;
  const std::string* file = nullptr;
};

// A checkpoint: a folder with model.safetensors.index.json (sharded) or model.safetensors, or a
// path to one .safetensors file. Every tensor name is unique across the shards.
class Checkpoint {
 public:
  explicit Checkpoint(const std::string& path);

  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  // Throws naming the checkpoint and the tensor when absent.
  TensorView get(const std::string& name) const;
  const std::vector<std::unique_ptr<File>>& files() const { return files_; }

 private:
  std::string path_;
  std::vector<std::unique_ptr<File>> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index into files_
};

// A tensor to write: the bytes are read, not owned.
struct TensorData {
  std::string name;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;  // must equal dtype_size * numel(shape)
};

// Writes one .safetensors file atomically: a temp file next to `path`, fsync, rename.
void write_file(const std::string& path, const std::vector<TensorData>& tensors,
                const std::map<std::string, std::string>& metadata = {});

// Writes `tensors` into `dir` as model.safetensors, or, when they exceed max_shard_bytes, as
// model-0000i-of-0000n.safetensors shards plus model.safetensors.index.json. Returns the names
// of the files written (relative to dir).
std::vector<std::string> write_checkpoint(const std::string& dir,
                                          const std::vector<TensorData>& tensors,
                                          size_t max_shard_bytes = size_t{5} << 30,
                                          const std::map<std::string, std::string>& metadata = {});

// Writes `contents` to `path` atomically (temp file + fsync + rename); used for the index and
// by callers writing config files next to a checkpoint.
void write_text_atomic(const std::string& path, const std::string& contents);

}  // namespace grpo::safetensors
