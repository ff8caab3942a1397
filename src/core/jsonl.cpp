// JSONL reading with file:line errors and atomic (temp + fsync + rename) writing; see jsonl.h.
#include "grpo/core/jsonl.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "grpo/core/error.h"

namespace grpo::jsonl {
namespace {

std::string errno_text() { return std::strerror(errno); }

// nlohmann's messages start with "[json.exception.parse_error.101] "; users need only the rest.
std::string strip_exception_id(const std::string& what) {
  const size_t close = what.find("] ");
  return close == std::string::npos ? what : what.substr(close + 2);
}

bool is_blank(const std::string& s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  }
  return true;
}

}  // namespace

std::string Location::str() const { return file + ":" + std::to_string(line); }

Reader::Reader(const std::string& path) {
  location_.file = path;
  const bool gz = path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0;
  if (gz) {
    errno = 0;
    gz_ = gzopen(path.c_str(), "rb");
    GRPO_CHECK(gz_ != nullptr, "cannot open ", path, ": ",
               errno != 0 ? errno_text() : std::string("zlib could not start"));
    gzbuffer(static_cast<gzFile>(gz_), 1 << 17);
  } else {
    in_.open(path, std::ios::binary);
    GRPO_CHECK(in_.is_open(), "cannot open ", path, ": ", errno_text());
  }
}

Reader::~Reader() {
  if (gz_) gzclose(static_cast<gzFile>(gz_));
}

bool Reader::read_line() {
  if (!gz_) return static_cast<bool>(std::getline(in_, line_));
  const auto file = static_cast<gzFile>(gz_);
  line_.clear();
  char buf[1 << 16];
  while (gzgets(file, buf, sizeof buf) != nullptr) {
    const size_t n = std::strlen(buf);
    line_.append(buf, n);
    if (n > 0 && buf[n - 1] == '\n') {
      line_.pop_back();
      return true;
    }
  }
  int code = Z_OK;
  const char* message = gzerror(file, &code);
  GRPO_CHECK(code == Z_OK, location_.file, ": cannot decompress after line ", location_.line, ": ",
             message, " (a truncated or corrupt gzip file)");
  return !line_.empty();  // a last line without '\n'
}

bool Reader::next(nlohmann::json& object) {
  while (read_line()) {
    ++location_.line;
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    if (location_.line == 1 && line_.compare(0, 3, "\xEF\xBB\xBF") == 0) line_.erase(0, 3);
    if (is_blank(line_)) continue;
    try {
      object = nlohmann::json::parse(line_);
    } catch (const nlohmann::json::parse_error& e) {
      GRPO_FAIL(location_.str(), ": invalid JSON: ", strip_exception_id(e.what()));
    }
    GRPO_CHECK(object.is_object(), location_.str(), ": expected a JSON object, got ",
               object.type_name());
    return true;
  }
  GRPO_CHECK(!in_.bad(), "error reading ", location_.file, ": ", errno_text());
  return false;
}

void for_each_object(const std::string& path,
                     const std::function<void(const nlohmann::json&, const Location&)>& fn) {
  Reader reader(path);
  nlohmann::json object;
  while (reader.next(object)) fn(object, reader.location());
}

std::vector<nlohmann::json> read_objects(const std::string& path) {
  std::vector<nlohmann::json> out;
  for_each_object(path, [&](const nlohmann::json& o, const Location&) { out.push_back(o); });
  return out;
}

const nlohmann::json& require_field(const nlohmann::json& object, const std::string& key,
                                    const Location& where) {
  auto it = object.find(key);
  GRPO_CHECK(it != object.end(), where.str(), ": missing field '", key, "'");
  return *it;
}

std::string require_string(const nlohmann::json& object, const std::string& key,
                           const Location& where) {
  const auto& v = require_field(object, key, where);
  GRPO_CHECK(v.is_string(), where.str(), ": field '", key, "' must be a string, got ",
             v.type_name());
  return v.get<std::string>();
}

int64_t require_int(const nlohmann::json& object, const std::string& key, const Location& where) {
  const auto& v = require_field(object, key, where);
  GRPO_CHECK(v.is_number_integer(), where.str(), ": field '", key, "' must be an integer, got ",
             v.is_number() ? v.dump() : std::string(v.type_name()));
  // Integers above INT64_MAX parse as unsigned; reject rather than wrap.
  GRPO_CHECK(!v.is_number_unsigned() || v.get<uint64_t>() <= uint64_t{INT64_MAX}, where.str(),
             ": field '", key, "' is out of range: ", v.dump());
  return v.get<int64_t>();
}

double require_number(const nlohmann::json& object, const std::string& key, const Location& where) {
  const auto& v = require_field(object, key, where);
  GRPO_CHECK(v.is_number(), where.str(), ": field '", key, "' must be a number, got ",
             v.type_name());
  return v.get<double>();
}

std::string optional_string(const nlohmann::json& object, const std::string& key,
                            const Location& where, const std::string& fallback) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  GRPO_CHECK(it->is_string(), where.str(), ": field '", key, "' must be a string, got ",
             it->type_name());
  return it->get<std::string>();
}

AtomicWriter::AtomicWriter(std::string path) : path_(std::move(path)) {
  // pid + a process-wide counter: concurrent writers never share a temp file.
  static std::atomic<uint64_t> counter{0};
  tmp_ = path_ + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  GRPO_CHECK(fd_ >= 0, "cannot create ", tmp_, ": ", errno_text());
}

AtomicWriter::~AtomicWriter() {
  if (committed_) return;
  if (fd_ >= 0) ::close(fd_);
  ::unlink(tmp_.c_str());
}

void AtomicWriter::write(std::string_view bytes) {
  GRPO_CHECK(!committed_, "write to ", path_, " after commit");
  buffer_.append(bytes.data(), bytes.size());
  if (buffer_.size() >= (size_t{1} << 20)) flush_buffer();
}

void AtomicWriter::flush_buffer() {
  const char* p = buffer_.data();
  size_t left = buffer_.size();
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0 && errno == EINTR) continue;
    GRPO_CHECK(n > 0, "cannot write ", tmp_, ": ", errno_text());
    p += n;
    left -= static_cast<size_t>(n);
  }
  buffer_.clear();
}

void AtomicWriter::commit() {
  GRPO_CHECK(!committed_, "commit of ", path_, " twice");
  flush_buffer();
  GRPO_CHECK(::fsync(fd_) == 0, "cannot fsync ", tmp_, ": ", errno_text());
  const int closed = ::close(fd_);
  fd_ = -1;
  GRPO_CHECK(closed == 0, "cannot close ", tmp_, ": ", errno_text());
  GRPO_CHECK(::rename(tmp_.c_str(), path_.c_str()) == 0, "cannot rename ", tmp_, " to ", path_,
             ": ", errno_text());
  committed_ = true;
  // The rename is durable only once the directory entry is on disk.
  std::filesystem::path dir = std::filesystem::path(path_).parent_path();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void Writer::write(const nlohmann::json& object) {
  GRPO_CHECK(object.is_object(), "JSONL line ", lines_ + 1, " of ", out_.path(),
             " must be an object, got ", object.type_name());
  // Invalid UTF-8 is replaced rather than aborting a long generation run on one bad string.
  out_.write(object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  out_.write("\n");
  ++lines_;
}

void write_objects(const std::string& path, const std::vector<nlohmann::json>& objects) {
  Writer writer(path);
  for (const auto& o : objects) writer.write(o);
  writer.commit();
}

}  // namespace grpo::jsonl
