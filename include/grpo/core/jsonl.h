// JSON Lines: streaming reading that reports `file:line: what was wrong` for every malformed
// line, typed field access that names the line, and atomic writers (temp file in the same
// directory, flush, fsync, rename) so a reader never sees a half-written file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace grpo::jsonl {

// Where a record came from: "file:line" in error messages.
struct Location {
  std::string file;
  size_t line = 0;  // 1-based
  std::string str() const;
};

// Reads one JSON object per line. Blank lines are skipped; a trailing '\r' (CRLF files) and a
// UTF-8 byte-order mark on the first line are ignored. Anything else that is not a JSON object
// throws grpo::Error naming file:line. A path ending in ".gz" is read through zlib (a truncated
// or corrupt file is an error naming it).
class Reader {
 public:
  explicit Reader(const std::string& path);  // throws when the file cannot be opened
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // Reads the next object; false at the end of the file.
  bool next(nlohmann::json& object);
  // The line of the object `next` returned last.
  const Location& location() const { return location_; }

 private:
  bool read_line();  // the next line into line_, without its '\n'; false at the end
  std::ifstream in_;
  void* gz_ = nullptr;  // zlib's gzFile for a *.gz path
  Location location_;
  std::string line_;
};

// Calls fn(object, location) for each object of the file, in order.
void for_each_object(const std::string& path,
                     const std::function<void(const nlohmann::json&, const Location&)>& fn);
// All objects of the file (small files: configs, fixtures, datasets that fit in memory).
std::vector<nlohmann::json> read_objects(const std::string& path);

// Typed field access; errors read "file:line: field 'key' ...".
const nlohmann::json& require_field(const nlohmann::json& object, const std::string& key,
                                    const Location& where);
std::string require_string(const nlohmann::json& object, const std::string& key,
                           const Location& where);
int64_t require_int(const nlohmann::json& object, const std::string& key, const Location& where);
double require_number(const nlohmann::json& object, const std::string& key, const Location& where);
// `fallback` when the key is absent or null; an error when present with another type.
std::string optional_string(const nlohmann::json& object, const std::string& key,
                            const Location& where, const std::string& fallback = "");

// Writes a file atomically, streaming: bytes go to a temp file next to `path`; commit() flushes,
// fsyncs, renames it over `path` and fsyncs the directory. Destroyed without commit() (an
// exception on the way), the temp file is removed and `path` is left as it was.
class AtomicWriter {
 public:
  explicit AtomicWriter(std::string path);
  ~AtomicWriter();
  AtomicWriter(const AtomicWriter&) = delete;
  AtomicWriter& operator=(const AtomicWriter&) = delete;

  void write(std::string_view bytes);
  void commit();
  const std::string& path() const { return path_; }

 private:
  void flush_buffer();

  std::string path_;
  std::string tmp_;
  int fd_ = -1;
  std::string buffer_;  // writes are batched: one syscall per ~1 MiB
  bool committed_ = false;
};

// JSONL on top of AtomicWriter: one compact object per line.
class Writer {
 public:
  explicit Writer(std::string path) : out_(std::move(path)) {}
  void write(const nlohmann::json& object);  // must be an object
  void commit() { out_.commit(); }
  size_t lines() const { return lines_; }

 private:
  AtomicWriter out_;
  size_t lines_ = 0;
};

// Writes all `objects` as JSONL atomically.
void write_objects(const std::string& path, const std::vector<nlohmann::json>& objects);

}  // namespace grpo::jsonl
