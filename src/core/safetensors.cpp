// safetensors reading (mmap + header validation) and atomic writing; see safetensors.h.
#include "grpo/core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "grpo/core/error.h"

namespace grpo::safetensors {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The reference implementation refuses headers above 100 MB; a larger one is corrupt.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

const std::pair<DType, const char*> kDTypeNames[] = {
    {DType::f32, "F32"}, {DType::f16, "F16"}, {DType::bf16, "BF16"}, {DType::i64, "I64"},
    {DType::i32, "I32"}, {DType::i8, "I8"},   {DType::u8, "U8"},     {DType::boolean, "BOOL"}};

DType parse_dtype(const std::string& name, const std::string& file, const std::string& tensor) {
  for (const auto& [dtype, spelling] : kDTypeNames) {
    if (name == spelling) return dtype;
  }
  GRPO_FAIL(file, ": tensor '", tensor, "' has unsupported dtype '", name,
            "' (supported: F32, F16, BF16, I64, I32, I8, U8, BOOL)");
}

std::string errno_text() { return std::strerror(errno); }

// Writes all of `size` bytes or throws.
void write_all(int fd, const void* data, size_t size, const std::string& path) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, std::min<size_t>(size, size_t{1} << 30));
    if (n < 0 && errno == EINTR) continue;
    GRPO_CHECK(n > 0, "cannot write ", path, ": ", errno_text());
    p += n;
    size -= static_cast<size_t>(n);
  }
}

// Calls write_body(fd) on a temp file next to `path`, fsyncs it, renames it over `path` and
// fsyncs the directory, so readers see either the old file or the complete new one.
template <class Body>
void write_atomic(const std::string& path, Body&& write_body) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  GRPO_CHECK(fd >= 0, "cannot create ", tmp, ": ", errno_text());
  try {
    write_body(fd, tmp);
    GRPO_CHECK(::fsync(fd) == 0, "cannot fsync ", tmp, ": ", errno_text());
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = errno_text();
    ::unlink(tmp.c_str());
    GRPO_FAIL("cannot rename ", tmp, " to ", path, ": ", why);
  }
  fs::path dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

int64_t checked_numel(const std::vector<int64_t>& shape, const std::string& where) {
  int64_t n = 1;
  for (const int64_t d : shape) {
    GRPO_CHECK(d >= 0, where, ": negative dimension ", d);
    GRPO_CHECK(d == 0 || n <= std::numeric_limits<int64_t>::max() / d, where, ": shape overflows");
    n *= d;
  }
  return n;
}

}  // namespace

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f32:
    case DType::i32:
      return 4;
    case DType::f16:
    case DType::bf16:
      return 2;
    case DType::i64:
      return 8;
    case DType::i8:
    case DType::u8:
    case DType::boolean:
      return 1;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  for (const auto& [d, spelling] : kDTypeNames) {
    if (d == dtype) return spelling;
  }
  return "?";
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (const int64_t d : shape) n *= d;
  return n;
}

File::File(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  GRPO_CHECK(fd >= 0, "cannot open ", path, ": ", errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string why = errno_text();
    ::close(fd);
    GRPO_FAIL("cannot stat ", path, ": ", why);
  }
  const auto file_size = static_cast<size_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    GRPO_FAIL(path, ": truncated safetensors file (", file_size,
              " bytes, shorter than the 8-byte header length)");
  }
  void* map = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  GRPO_CHECK(map != MAP_FAILED, "cannot mmap ", path, ": ", errno_text());
  map_ = map;
  map_size_ = file_size;
  try {
    parse_header(file_size);
  } catch (...) {
    ::munmap(map_, map_size_);
    throw;
  }
}

File::~File() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

void File::parse_header(size_t file_size) {
  const auto* bytes = static_cast<const uint8_t*>(map_);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];  // little-endian
  GRPO_CHECK(header_len <= kMaxHeaderBytes, path_, ": header length ", header_len,
             " is not sane (limit ", kMaxHeaderBytes, "); not a safetensors file or corrupt");
  GRPO_CHECK(8 + header_len <= file_size, path_, ": truncated: header length ", header_len,
             " exceeds the file size ", file_size);
  GRPO_CHECK(header_len >= 2 && bytes[8] == '{', path_,
             ": header does not start with a JSON object");
  const char* text = reinterpret_cast<const char*>(bytes + 8);
  json header;
  try {
    header = json::parse(text, text + header_len);
  } catch (const json::exception& e) {
    GRPO_FAIL(path_, ": header is not valid JSON: ", e.what());
  }
  GRPO_CHECK(header.is_object(), path_, ": header is not a JSON object");
  data_ = bytes + 8 + header_len;
  const size_t buffer_size = file_size - 8 - header_len;

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& entry = it.value();
    if (name == "__metadata__") {
      GRPO_CHECK(entry.is_object(), path_, ": __metadata__ is not an object");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        GRPO_CHECK(m.value().is_string(), path_, ": __metadata__ value '", m.key(),
                   "' is not a string");
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = path_ + ": tensor '" + name + "'";
    GRPO_CHECK(entry.is_object() && entry.contains("dtype") && entry.contains("shape") &&
                   entry.contains("data_offsets"),
               where, ": entry needs dtype, shape and data_offsets");
    GRPO_CHECK(entry["dtype"].is_string(), where, ": dtype is not a string");
    TensorInfo info;
    info.name = name;
    info.dtype = parse_dtype(entry["dtype"].get<std::string>(), path_, name);
    const json& shape = entry["shape"];
    GRPO_CHECK(shape.is_array(), where, ": shape is not an array");
    for (const json& d : shape) {
      GRPO_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0), where,
                 ": shape has a non-integer or negative dimension ", d.dump());
      info.shape.push_back(d.get<int64_t>());
    }
    const json& offsets = entry["data_offsets"];
    GRPO_CHECK(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
                   offsets[1].is_number_unsigned(),
               where, ": data_offsets must be two non-negative integers");
    info.begin = offsets[0].get<size_t>();
    info.end = offsets[1].get<size_t>();
    GRPO_CHECK(info.begin <= info.end, where, ": data_offsets [", info.begin, ", ", info.end,
               "] are reversed");
    GRPO_CHECK(info.end <= buffer_size, where, ": data_offsets end ", info.end,
               " is past the data buffer (", buffer_size, " bytes); file truncated?");
    const int64_t numel = checked_numel(info.shape, where);
    const size_t expected = static_cast<size_t>(numel) * dtype_size(info.dtype);
    GRPO_CHECK(info.nbytes() == expected, where, ": holds ", info.nbytes(), " bytes but ",
               dtype_name(info.dtype), " x ", shape.dump(), " needs ", expected);
    tensors_.push_back(std::move(info));
  }

  // Tensors must not share bytes: sort by offset and compare neighbours.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& prev = *by_offset[i - 1];
    const TensorInfo& cur = *by_offset[i];
    GRPO_CHECK(cur.begin >= prev.end || cur.nbytes() == 0 || prev.nbytes() == 0, path_,
               ": tensor '", cur.name, "' [", cur.begin, ", ", cur.end, ") overlaps tensor '",
               prev.name, "' [", prev.begin, ", ", prev.end, ")");
  }
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

const TensorInfo* File::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& File::at(const std::string& name) const {
  const TensorInfo* info = find(name);
  GRPO_CHECK(info != nullptr, path_, ": no tensor named '", name, "'");
  return *info;
}

Checkpoint::Checkpoint(const std::string& path) : path_(path) {
  const fs::path p(path);
  if (fs::is_regular_file(p)) {
    files_.push_back(std::make_unique<File>(path));
  } else {
    GRPO_CHECK(fs::is_directory(p), path, ": no such checkpoint file or folder");
    const fs::path index_path = p / "model.safetensors.index.json";
    if (fs::exists(index_path)) {
      json index;
      std::FILE* f = std::fopen(index_path.c_str(), "rb");
      GRPO_CHECK(f != nullptr, "cannot open ", index_path.string(), ": ", errno_text());
      std::string text;
      char buf[65536];
      size_t n = 0;
      while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
      std::fclose(f);
      try {
        index = json::parse(text);
      } catch (const json::exception& e) {
        GRPO_FAIL(index_path.string(), ": not valid JSON: ", e.what());
      }
      GRPO_CHECK(
          index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
          index_path.string(), ": missing object 'weight_map'");
      std::map<std::string, size_t> shard_of_file;
      for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
        GRPO_CHECK(it.value().is_string(), index_path.string(), ": weight_map['", it.key(),
                   "'] is not a file name");
        const std::string shard = it.value().get<std::string>();
        GRPO_CHECK(shard.find('/') == std::string::npos && shard != ".." && !shard.empty(),
                   index_path.string(), ": weight_map['", it.key(), "'] names '", shard,
                   "', which is not a file in the folder");
        auto found = shard_of_file.find(shard);
        if (found == shard_of_file.end()) {
          files_.push_back(std::make_unique<File>((p / shard).string()));
          found = shard_of_file.emplace(shard, files_.size() - 1).first;
        }
        GRPO_CHECK(files_[found->second]->find(it.key()) != nullptr, index_path.string(),
                   ": tensor '", it.key(), "' is mapped to ", shard, " but that file lacks it");
      }
    } else {
      const fs::path single = p / "model.safetensors";
      GRPO_CHECK(fs::exists(single), path,
                 ": neither model.safetensors nor model.safetensors.index.json found");
      files_.push_back(std::make_unique<File>(single.string()));
    }
  }
  for (size_t i = 0; i < files_.size(); ++i) {
    for (const auto& t : files_[i]->tensors()) {
      const auto [it, inserted] = where_.emplace(t.name, i);
      GRPO_CHECK(inserted, path, ": tensor '", t.name, "' appears in both ",
                 files_[it->second]->path(), " and ", files_[i]->path());
    }
  }
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& [name, file] : where_) out.push_back(name);
  return out;
}

TensorView Checkpoint::get(const std::string& name) const {
  const auto it = where_.find(name);
  GRPO_CHECK(it != where_.end(), path_, ": no tensor named '", name, "'");
  const File& file = *files_[it->second];
  const TensorInfo& info = file.at(name);
  return TensorView{&info, file.data(info), &file.path()};
}

void write_file(const std::string& path, const std::vector<TensorData>& tensors,
                const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const auto& t : tensors) {
    const std::string where = path + ": tensor '" + t.name + "'";
    GRPO_CHECK(!t.name.empty() && t.name != "__metadata__", where, ": invalid tensor name");
    GRPO_CHECK(!header.contains(t.name), where, ": written twice");
    const size_t expected =
        static_cast<size_t>(checked_numel(t.shape, where)) * dtype_size(t.dtype);
    GRPO_CHECK(t.nbytes == expected, where, ": has ", t.nbytes, " bytes but ", dtype_name(t.dtype),
               " x shape needs ", expected);
    GRPO_CHECK(t.data != nullptr || t.nbytes == 0, where, ": null data");
    header[t.name] = {{"dtype", dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string text = header.dump();
  // Pad with spaces so the data buffer starts 8-byte aligned, as the reference writer does.
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t len_bytes[8];
  uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<uint8_t>(len >> (8 * i));
  write_atomic(path, [&](int fd, const std::string& tmp) {
    write_all(fd, len_bytes, 8, tmp);
    write_all(fd, text.data(), text.size(), tmp);
    for (const auto& t : tensors) write_all(fd, t.data, t.nbytes, tmp);
  });
}

void write_text_atomic(const std::string& path, const std::string& contents) {
  write_atomic(path, [&](int fd, const std::string& tmp) {
    write_all(fd, contents.data(), contents.size(), tmp);
  });
}

std::vector<std::string> write_checkpoint(const std::string& dir,
                                          const std::vector<TensorData>& tensors,
                                          size_t max_shard_bytes,
                                          const std::map<std::string, std::string>& metadata) {
  GRPO_CHECK(max_shard_bytes > 0, "write_checkpoint: max_shard_bytes must be positive");
  fs::create_directories(dir);
  // Greedy split in the given order; a tensor larger than the limit gets a shard of its own.
  std::vector<std::vector<const TensorData*>> shards(1);
  size_t shard_bytes = 0;
  size_t total = 0;
  for (const auto& t : tensors) {
    if (!shards.back().empty() && shard_bytes + t.nbytes > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(&t);
    shard_bytes += t.nbytes;
    total += t.nbytes;
  }
  const fs::path root(dir);
  std::vector<std::string> written;
  if (shards.size() == 1) {
    write_file((root / "model.safetensors").string(), tensors, metadata);
    // A stale index from an earlier sharded save would shadow the new single file.
    std::error_code ignored;
    fs::remove(root / "model.safetensors.index.json", ignored);
    written.push_back("model.safetensors");
    return written;
  }
  json weight_map = json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    std::vector<TensorData> part;
    for (const TensorData* t : shards[s]) {
      part.push_back(*t);
      weight_map[t->name] = name;
    }
    write_file((root / name).string(), part, metadata);
    written.emplace_back(name);
  }
  // transformers prefers model.safetensors over the index; drop one left by an earlier save.
  std::error_code ignored;
  fs::remove(root / "model.safetensors", ignored);
  const json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  write_text_atomic((root / "model.safetensors.index.json").string(), index.dump(2) + "\n");
  written.emplace_back("model.safetensors.index.json");
  return written;
}

}  // namespace grpo::safetensors
