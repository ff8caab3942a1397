// TensorBoard event files: CRC32C, TFRecord framing and the few protobuf fields of
// tensorflow.Event / Summary that scalar curves need, encoded by hand.
#include "grpo/core/tensorboard.h"

#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "grpo/core/error.h"

namespace grpo::tensorboard {

namespace fs = std::filesystem;

namespace {

// Reflected Castagnoli polynomial 0x1EDC6F41.
constexpr uint32_t kCastagnoli = 0x82F63B78u;

std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kCastagnoli : c >> 1;
    table[i] = c;
  }
  return table;
}

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

uint64_t get_le(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

enum Wire : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void put_tag(std::string& out, uint32_t field, Wire wire) { put_varint(out, (field << 3) | wire); }

void put_bytes(std::string& out, uint32_t field, const std::string& bytes) {
  put_tag(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out += bytes;
}

void put_double(std::string& out, uint32_t field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  put_tag(out, field, kFixed64);
  put_le(out, bits, 8);
}

void put_float(std::string& out, uint32_t field, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  put_tag(out, field, kFixed32);
  put_le(out, bits, 4);
}

// Event header fields shared by both event kinds.
std::string event_head(double wall_time, int64_t step) {
  std::string out;
  put_double(out, 1, wall_time);
  if (step != 0) {
    put_tag(out, 2, kVarint);
    put_varint(out, static_cast<uint64_t>(step));  // negative int64: 10-byte two's complement
  }
  return out;
}

bool read_varint(const std::string& s, size_t& pos, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && pos < s.size(); shift += 7) {
    const auto byte = static_cast<uint8_t>(s[pos++]);
    v |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if (!(byte & 0x80)) return true;
  }
  return false;
}

std::atomic<int> g_file_counter{0};

}  // namespace

uint32_t crc32c(const void* data, size_t size) {
  static const std::array<uint32_t, 256> table = make_table();
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t c = crc32c(data, size);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string frame_record(const std::string& data) {
  std::string out;
  put_le(out, data.size(), 8);
  put_le(out, masked_crc32c(out.data(), 8), 4);
  out += data;
  put_le(out, masked_crc32c(data.data(), data.size()), 4);
  return out;
}

std::string encode_file_version_event(double wall_time) {
  std::string out = event_head(wall_time, 0);
  put_bytes(out, 3, "brain.Event:2");
  return out;
}

std::string encode_scalars_event(double wall_time, int64_t step,
                                 const std::vector<std::pair<std::string, double>>& scalars) {
  std::string summary;
  for (const auto& [tag, value] : scalars) {
    std::string v;
    put_bytes(v, 1, tag);
    put_float(v, 2, static_cast<float>(value));
    put_bytes(summary, 1, v);
  }
  std::string out = event_head(wall_time, step);
  put_bytes(out, 5, summary);
  return out;
}

std::string encode_text_event(double wall_time, int64_t step, const std::string& tag,
                              const std::string& text) {
  std::string plugin_data;
  put_bytes(plugin_data, 1, "text");
  std::string metadata;
  put_bytes(metadata, 1, plugin_data);
  std::string tensor;
  put_tag(tensor, 1, kVarint);
  put_varint(tensor, 7);     // DT_STRING
  put_bytes(tensor, 2, "");  // a scalar: no dimensions
  put_bytes(tensor, 8, text);
  std::string value;
  put_bytes(value, 1, tag);
  put_bytes(value, 9, metadata);
  put_bytes(value, 8, tensor);
  std::string summary;
  put_bytes(summary, 1, value);
  std::string out = event_head(wall_time, step);
  put_bytes(out, 5, summary);
  return out;
}

RecordScan read_records(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  GRPO_CHECK(in, "cannot read event file ", path);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  RecordScan scan;
  size_t pos = 0;
  while (pos + 12 <= bytes.size()) {
    const uint64_t length = get_le(bytes.data() + pos, 8);
    if (get_le(bytes.data() + pos + 8, 4) != masked_crc32c(bytes.data() + pos, 8)) break;
    if (length > bytes.size() - pos - 12 || bytes.size() - pos - 12 - length < 4) break;
    const char* data = bytes.data() + pos + 12;
    if (get_le(data + length, 4) != masked_crc32c(data, length)) break;
    scan.offsets.push_back(pos);
    scan.records.emplace_back(data, length);
    pos += 12 + length + 4;
  }
  scan.valid_bytes = pos;
  return scan;
}

int64_t event_step(const std::string& event) {
  size_t pos = 0;
  while (pos < event.size()) {
    uint64_t key = 0, v = 0;
    if (!read_varint(event, pos, key)) break;
    const uint64_t wire = key & 7;
    if ((key >> 3) == 2 && wire == kVarint) {
      if (!read_varint(event, pos, v)) break;
      return static_cast<int64_t>(v);
    }
    if (wire == kVarint) {
      if (!read_varint(event, pos, v)) break;
    } else if (wire == kFixed64) {
      pos += 8;
    } else if (wire == kFixed32) {
      pos += 4;
    } else if (wire == kLengthDelimited) {
      if (!read_varint(event, pos, v)) break;
      pos += v;
    } else {
      break;
    }
  }
  return 0;
}

double wall_time_now() {
  const std::chrono::duration<double> d = std::chrono::system_clock::now().time_since_epoch();
  return d.count();
}

EventFileWriter::EventFileWriter(const std::string& dir, std::optional<int64_t> resume_step) {
  fs::create_directories(dir);
  if (resume_step) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string name = entry.path().filename().string();
      if (!entry.is_regular_file() || name.find("tfevents") == std::string::npos) continue;
      const RecordScan scan = read_records(entry.path().string());
      uint64_t keep = scan.valid_bytes;
      for (size_t i = 0; i < scan.records.size(); ++i) {
        if (event_step(scan.records[i]) > *resume_step) {
          keep = scan.offsets[i];
          break;
        }
      }
      if (keep < fs::file_size(entry.path())) fs::resize_file(entry.path(), keep);
    }
  }
  char host[256] = "localhost";
  gethostname(host, sizeof(host) - 1);
  const auto now = static_cast<long long>(wall_time_now());
  path_ = (fs::path(dir) / ("events.out.tfevents." + std::to_string(now) + "." + host + "." +
                            std::to_string(getpid()) + "." + std::to_string(g_file_counter++)))
              .string();
  out_.open(path_, std::ios::binary | std::ios::trunc);
  GRPO_CHECK(out_, "cannot create event file ", path_);
  write_record(encode_file_version_event(wall_time_now()));
}

void EventFileWriter::write(const metrics::StepMetrics& metrics) {
  write(metrics, wall_time_now());
}

void EventFileWriter::write(const metrics::StepMetrics& metrics, double wall_time) {
  write_record(encode_scalars_event(wall_time, metrics.step(), metrics.values()));
}

void EventFileWriter::write_text(int64_t step, const std::string& tag,
                                 const std::string& markdown) {
  write_record(encode_text_event(wall_time_now(), step, tag, markdown));
}

void EventFileWriter::write_record(const std::string& event) {
  out_ << frame_record(event);
  out_.flush();
  GRPO_CHECK(out_, "write to event file ", path_, " failed");
}

}  // namespace grpo::tensorboard
