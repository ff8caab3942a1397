// Our TensorBoard event files read back by an independent decoder written here: TFRecord
// framing, both masked CRC32Cs (checked with a bitwise CRC and RFC 3720's test vectors) and the
// protobuf fields of Event / Summary.Value. scripts/check_tensorboard_events.py does the same
// with the real tensorboard package.
#include "grpo/core/tensorboard.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

namespace fs = std::filesystem;
namespace tb = grpo::tensorboard;

namespace {

// Bit-at-a-time CRC-32C, straight from the definition (reflected polynomial 0x82F63B78).
uint32_t reference_crc32c(const std::string& bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : bytes) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

uint32_t reference_mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

uint64_t le(const std::string& s, size_t pos, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= uint64_t{static_cast<unsigned char>(s[pos + i])} << (8 * i);
  return v;
}

// A decoded protobuf field: varints and fixed-width numbers in `number`, bytes in `bytes`.
struct Field {
  uint32_t field = 0;
  uint32_t wire = 0;
  uint64_t number = 0;
  std::string bytes;
};

std::vector<Field> decode(const std::string& msg) {
  std::vector<Field> out;
  size_t pos = 0;
  auto varint = [&]() {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      EXPECT_LT(pos, msg.size());
      const auto b = static_cast<unsigned char>(msg[pos++]);
      v |= uint64_t{b & 0x7Fu} << shift;
      if (!(b & 0x80)) return v;
    }
  };
  while (pos < msg.size()) {
    Field f;
    const uint64_t key = varint();
    f.field = static_cast<uint32_t>(key >> 3);
    f.wire = static_cast<uint32_t>(key & 7);
    if (f.wire == 0) {
      f.number = varint();
    } else if (f.wire == 1) {
      f.number = le(msg, pos, 8);
      pos += 8;
    } else if (f.wire == 5) {
      f.number = le(msg, pos, 4);
      pos += 4;
    } else {
      EXPECT_EQ(f.wire, 2u);
      const uint64_t n = varint();
      f.bytes = msg.substr(pos, n);
      pos += n;
    }
    out.push_back(f);
  }
  EXPECT_EQ(pos, msg.size());
  return out;
}

// Splits a file into records, checking the framing and both CRCs of every record.
std::vector<std::string> parse_records(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> records;
  size_t pos = 0;
  while (pos < bytes.size()) {
    EXPECT_LE(pos + 12, bytes.size());
    const uint64_t length = le(bytes, pos, 8);
    EXPECT_EQ(le(bytes, pos + 8, 4), reference_mask(reference_crc32c(bytes.substr(pos, 8))));
    const std::string data = bytes.substr(pos + 12, length);
    EXPECT_EQ(le(bytes, pos + 12 + length, 4), reference_mask(reference_crc32c(data)));
    records.push_back(data);
    pos += 12 + length + 4;
  }
  EXPECT_EQ(pos, bytes.size());
  return records;
}

double as_double(uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}

float as_float(uint64_t bits) {
  const auto b32 = static_cast<uint32_t>(bits);
  float f;
  std::memcpy(&f, &b32, 4);
  return f;
}

struct DecodedEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  std::map<std::string, float> scalars;
};

DecodedEvent decode_event(const std::string& record) {
  DecodedEvent e;
  for (const Field& f : decode(record)) {
    if (f.field == 1 && f.wire == 1) {
      e.wall_time = as_double(f.number);
    } else if (f.field == 2 && f.wire == 0) {
      e.step = static_cast<int64_t>(f.number);
    } else if (f.field == 3 && f.wire == 2) {
      e.file_version = f.bytes;
    } else if (f.field == 5 && f.wire == 2) {
      for (const Field& value : decode(f.bytes)) {
        EXPECT_EQ(value.field, 1u);
        std::string tag;
        float simple = 0;
        for (const Field& vf : decode(value.bytes)) {
          if (vf.field == 1 && vf.wire == 2) tag = vf.bytes;
          if (vf.field == 2 && vf.wire == 5) simple = as_float(vf.number);
        }
        e.scalars[tag] = simple;
      }
    } else {
      ADD_FAILURE() << "unexpected field " << f.field << " wire " << f.wire;
    }
  }
  return e;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("grpo_tb_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<fs::path> event_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

TEST(Crc32c, Rfc3720TestVectors) {
  EXPECT_EQ(tb::crc32c("123456789", 9), 0xE3069283u);
  const std::string zeros(32, '\0'), ones(32, '\xFF');
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(tb::crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(tb::crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(tb::crc32c(ascending.data(), 32), 0x46DD794Eu);
  EXPECT_EQ(tb::crc32c(descending.data(), 32), 0x113FDB5Cu);
  EXPECT_EQ(reference_crc32c("123456789"), 0xE3069283u);
}

TEST(Crc32c, AgreesWithBitwiseReferenceAndMask) {
  std::string s;
  for (int i = 0; i < 1000; ++i) {
    s.push_back(static_cast<char>((i * 131 + 7) & 0xFF));
    ASSERT_EQ(tb::crc32c(s.data(), s.size()), reference_crc32c(s)) << "length " << s.size();
  }
  EXPECT_EQ(tb::masked_crc32c(s.data(), s.size()), reference_mask(reference_crc32c(s)));
}

TEST(EventFile, RecordsDecodeToFileVersionThenScalars) {
  const fs::path dir = fresh_dir("write");
  std::string path;
  {
    tb::EventFileWriter w(dir.string(), std::nullopt);
    path = w.path();
    grpo::metrics::StepMetrics m(1);
    m.set("reward/mean", 0.25);
    m.set("loss", -3.5);
    w.write(m, 1700000000.5);
    grpo::metrics::StepMetrics m2(300);  // a multi-byte varint step
    m2.set("reward/mean", 0.75);
    w.write(m2, 1700000001.25);
  }
  EXPECT_NE(fs::path(path).filename().string().find("events.out.tfevents."), std::string::npos);
  const auto records = parse_records(path);
  ASSERT_EQ(records.size(), 3u);
  const DecodedEvent first = decode_event(records[0]);
  EXPECT_EQ(first.file_version, "brain.Event:2");
  EXPECT_GT(first.wall_time, 1.6e9);
  const DecodedEvent a = decode_event(records[1]);
  EXPECT_EQ(a.wall_time, 1700000000.5);
  EXPECT_EQ(a.step, 1);
  EXPECT_EQ(a.scalars.size(), 2u);
  EXPECT_EQ(a.scalars.at("reward/mean"), 0.25f);
  EXPECT_EQ(a.scalars.at("loss"), -3.5f);
  const DecodedEvent b = decode_event(records[2]);
  EXPECT_EQ(b.step, 300);
  EXPECT_EQ(b.scalars.at("reward/mean"), 0.75f);
  EXPECT_EQ(tb::event_step(records[2]), 300);
}

// A text summary decodes, field by field of tensorflow's Summary.Value, to the tag, the "text"
// plugin, a DT_STRING (7) scalar tensor (a shape with no dimensions) and the text itself; the
// event is cut on resume by its step like a scalar event.
TEST(EventFile, TextSummaryDecodesToTheTextPluginTensor) {
  const std::string text = "### prompt 0\n\n    2 + 3 = 5\n";
  const std::string event = tb::encode_text_event(1700000002.0, 7, "samples", text);
  const auto fields = decode(event);
  ASSERT_EQ(fields.size(), 3u);  // wall_time, step, summary
  EXPECT_EQ(as_double(fields[0].number), 1700000002.0);
  EXPECT_EQ(fields[1].number, 7u);
  ASSERT_EQ(fields[2].field, 5u);
  const auto values = decode(fields[2].bytes);
  ASSERT_EQ(values.size(), 1u);
  const auto value = decode(values[0].bytes);
  ASSERT_EQ(value.size(), 3u);
  EXPECT_EQ(value[0].field, 1u);
  EXPECT_EQ(value[0].bytes, "samples");
  EXPECT_EQ(value[1].field, 9u);  // metadata { plugin_data { plugin_name: "text" } }
  const auto plugin = decode(decode(value[1].bytes).at(0).bytes);
  EXPECT_EQ(plugin.at(0).field, 1u);
  EXPECT_EQ(plugin.at(0).bytes, "text");
  EXPECT_EQ(value[2].field, 8u);  // tensor
  const auto tensor = decode(value[2].bytes);
  ASSERT_EQ(tensor.size(), 3u);
  EXPECT_EQ(tensor[0].field, 1u);
  EXPECT_EQ(tensor[0].number, 7u);  // DT_STRING
  EXPECT_EQ(tensor[1].field, 2u);
  EXPECT_EQ(tensor[1].bytes, "");  // TensorShapeProto without dims: a scalar
  EXPECT_EQ(tensor[2].field, 8u);
  EXPECT_EQ(tensor[2].bytes, text);
  EXPECT_EQ(tb::event_step(event), 7);
}

TEST(EventFile, ResumeCutsLaterStepsAndTornRecord) {
  const fs::path dir = fresh_dir("resume");
  std::string first_path;
  {
    tb::EventFileWriter w(dir.string(), std::nullopt);
    first_path = w.path();
    for (int s = 1; s <= 5; ++s) {
      grpo::metrics::StepMetrics m(s);
      m.set("x", s);
      w.write(m);
    }
  }
  {  // killed mid-record
    std::ofstream out(first_path, std::ios::binary | std::ios::app);
    out << std::string("\x20\0\0\0\0\0\0\0\x01\x02", 10);
  }
  EXPECT_EQ(tb::read_records(first_path).records.size(), 6u);
  {
    tb::EventFileWriter w(dir.string(), int64_t{3});
    grpo::metrics::StepMetrics m(4);
    m.set("x", 40);
    w.write(m);
  }
  const auto files = event_files(dir);
  ASSERT_EQ(files.size(), 2u);
  const auto old_records = parse_records(first_path);  // also checks no torn tail is left
  ASSERT_EQ(old_records.size(), 4u);                   // file version + steps 1..3
  EXPECT_EQ(decode_event(old_records.back()).step, 3);
  const fs::path new_path = files[0] == fs::path(first_path) ? files[1] : files[0];
  const auto new_records = parse_records(new_path);
  ASSERT_EQ(new_records.size(), 2u);
  EXPECT_EQ(decode_event(new_records[1]).scalars.at("x"), 40.0f);
}
