// safetensors reader/writer: bytes laid out by hand from the format description, a file written
// by the Python `safetensors` package (scripts/make_model_fixtures.py), round trips, sharding,
// and corrupt/truncated files that must fail with the file and tensor named.
#include "grpo/core/safetensors.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "grpo/core/error.h"

namespace fs = std::filesystem;
namespace st = grpo::safetensors;

namespace {

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("grpo_st_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A file made of an 8-byte little-endian length, the header text and `data` bytes.
  std::string raw_file(const std::string& name, const std::string& header, size_t data_bytes,
                       uint64_t claimed_len = UINT64_MAX) {
    const std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary);
    const uint64_t len = claimed_len == UINT64_MAX ? header.size() : claimed_len;
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((len >> (8 * i)) & 0xff));
    out << header;
    for (size_t i = 0; i < data_bytes; ++i) out.put(static_cast<char>(i));
    return path;
  }

  fs::path dir_;
};

// Runs `fn`, expecting a grpo::Error whose message contains every string in `needles`.
void expect_error(const std::function<void()>& fn, const std::vector<std::string>& needles) {
  try {
    fn();
    ADD_FAILURE() << "expected an error mentioning " << needles.front();
  } catch (const grpo::Error& e) {
    for (const auto& n : needles) {
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
          << "message '" << e.what() << "' lacks '" << n << "'";
    }
  }
}

}  // namespace

TEST_F(SafetensorsTest, ReadsHandBuiltFile) {
  // Two tensors laid out per the format: "a" F32 [2] at [0,8), "b" I8 [3] at [8,11).
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"I8","shape":[3],"data_offsets":[8,11]}})";
  const std::string path = (dir_ / "hand.safetensors").string();
  {
    std::ofstream out(path, std::ios::binary);
    const uint64_t len = header.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((len >> (8 * i)) & 0xff));
    out << header;
    const float a[2] = {1.5f, -2.0f};
    out.write(reinterpret_cast<const char*>(a), sizeof(a));
    const int8_t b[3] = {-1, 0, 7};
    out.write(reinterpret_cast<const char*>(b), sizeof(b));
  }
  st::File file(path);
  ASSERT_EQ(file.tensors().size(), 2u);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  const auto& a = file.at("a");
  EXPECT_EQ(a.dtype, st::DType::f32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2}));
  float av[2];
  std::memcpy(av, file.data(a), sizeof(av));
  EXPECT_EQ(av[0], 1.5f);
  EXPECT_EQ(av[1], -2.0f);
  const auto& b = file.at("b");
  EXPECT_EQ(b.dtype, st::DType::i8);
  EXPECT_EQ(static_cast<int8_t>(file.data(b)[0]), -1);
  EXPECT_EQ(static_cast<int8_t>(file.data(b)[2]), 7);
}

TEST_F(SafetensorsTest, ReadsFileWrittenByPythonSafetensors) {
  // Written by scripts/make_model_fixtures.py with safetensors.torch.save_file; values known.
  const std::string path = GRPO_SOURCE_DIR "/tests/fixtures/model/dtypes.safetensors";
  if (!fs::exists(path)) GTEST_SKIP() << path << " missing; run scripts/make_model_fixtures.py";
  st::File file(path);
  EXPECT_EQ(file.tensors().size(), 8u);
  const auto check_seq = [&](const char* name, st::DType dtype, auto zero) {
    using T = decltype(zero);
    const auto& info = file.at(name);
    EXPECT_EQ(info.dtype, dtype) << name;
    ASSERT_EQ(info.shape, (std::vector<int64_t>{2, 3})) << name;
    for (int i = 0; i < 6; ++i) {
      T v;
      std::memcpy(&v, file.data(info) + i * sizeof(T), sizeof(T));
      EXPECT_EQ(v, static_cast<T>(i - 2)) << name << "[" << i << "]";
    }
  };
  check_seq("f32", st::DType::f32, float{});
  check_seq("i64", st::DType::i64, int64_t{});
  check_seq("i32", st::DType::i32, int32_t{});
  check_seq("i8", st::DType::i8, int8_t{});
  // U8 holds i + 250 (wraps past 255 checked separately); BOOL alternates.
  const auto& u8 = file.at("u8");
  EXPECT_EQ(file.data(u8)[0], 250);
  EXPECT_EQ(file.data(u8)[5], 255);
  const auto& b = file.at("bool");
  EXPECT_EQ(b.dtype, st::DType::boolean);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(file.data(b)[i], i % 2);
  // F16 1.0 = 0x3c00, BF16 1.0 = 0x3f80 (first element), -2.0 = 0xc000 / 0xc000.
  uint16_t h[2];
  std::memcpy(h, file.data(file.at("f16")), 4);
  EXPECT_EQ(h[0], 0x3c00);
  EXPECT_EQ(h[1], 0xc000);
  std::memcpy(h, file.data(file.at("bf16")), 4);
  EXPECT_EQ(h[0], 0x3f80);
  EXPECT_EQ(h[1], 0xc000);
}

TEST_F(SafetensorsTest, RoundTripsEveryDtype) {
  std::vector<uint8_t> bytes(64);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 7);
  const st::DType all[] = {st::DType::f32, st::DType::f16, st::DType::bf16, st::DType::i64,
                           st::DType::i32, st::DType::i8,  st::DType::u8,   st::DType::boolean};
  std::vector<st::TensorData> tensors;
  for (const auto dtype : all) {
    const int64_t n = 8 / static_cast<int64_t>(st::dtype_size(dtype));
    tensors.push_back({std::string("t_") + st::dtype_name(dtype),
                       dtype,
                       {n, 1},
                       bytes.data(),
                       static_cast<size_t>(n) * st::dtype_size(dtype)});
  }
  tensors.push_back({"empty", st::DType::f32, {0, 4}, nullptr, 0});
  const std::string path = (dir_ / "all.safetensors").string();
  st::write_file(path, tensors, {{"format", "pt"}});
  EXPECT_FALSE(fs::exists(path + ".tmp." + std::to_string(::getpid())));
  st::File file(path);
  EXPECT_EQ(file.tensors().size(), tensors.size());
  for (const auto& t : tensors) {
    const auto& info = file.at(t.name);
    EXPECT_EQ(info.dtype, t.dtype);
    EXPECT_EQ(info.shape, t.shape);
    ASSERT_EQ(info.nbytes(), t.nbytes);
    if (t.nbytes > 0) {
      EXPECT_EQ(std::memcmp(file.data(info), t.data, t.nbytes), 0) << t.name;
    }
  }
  // The header is padded with spaces so the data buffer starts 8-byte aligned.
  std::ifstream in(path, std::ios::binary);
  uint8_t len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | len_bytes[i];
  EXPECT_EQ(len % 8, 0u);
}

TEST_F(SafetensorsTest, ShardsWithIndexAndReadsBack) {
  std::vector<float> a(100, 1.0f), b(100, 2.0f), c(10, 3.0f);
  std::vector<st::TensorData> tensors = {
      {"a", st::DType::f32, {100}, a.data(), 400},
      {"b", st::DType::f32, {10, 10}, b.data(), 400},
      {"c", st::DType::f32, {10}, c.data(), 40},
  };
  const auto files = st::write_checkpoint(dir_.string(), tensors, 500);
  ASSERT_EQ(files.size(), 3u);  // two shards + index
  EXPECT_EQ(files[0], "model-00001-of-00002.safetensors");
  EXPECT_TRUE(fs::exists(dir_ / "model.safetensors.index.json"));
  st::Checkpoint ckpt(dir_.string());
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ckpt.files().size(), 2u);
  float v;
  std::memcpy(&v, ckpt.get("c").data, 4);
  EXPECT_EQ(v, 3.0f);
  expect_error([&] { ckpt.get("d"); }, {dir_.string(), "'d'"});

  // Saving again unsharded removes the stale index so the new file is what gets read.
  st::write_checkpoint(dir_.string(), {tensors[2]});
  EXPECT_FALSE(fs::exists(dir_ / "model.safetensors.index.json"));
  EXPECT_EQ(st::Checkpoint(dir_.string()).names(), (std::vector<std::string>{"c"}));
}

TEST_F(SafetensorsTest, IndexNamingAMissingTensorFails) {
  std::vector<float> a(4, 1.0f);
  st::write_file((dir_ / "s1.safetensors").string(), {{"a", st::DType::f32, {4}, a.data(), 16}});
  st::write_text_atomic((dir_ / "model.safetensors.index.json").string(),
                        R"({"weight_map":{"a":"s1.safetensors","ghost":"s1.safetensors"}})");
  expect_error([&] { st::Checkpoint c(dir_.string()); }, {"ghost", "s1.safetensors"});
}

TEST_F(SafetensorsTest, RejectsCorruptFiles) {
  const std::string ok = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  // Shorter than the length prefix.
  {
    const std::string p = (dir_ / "tiny.safetensors").string();
    std::ofstream(p, std::ios::binary) << "abc";
    expect_error([&] { st::File f(p); }, {p, "truncated"});
  }
  // Header length beyond any sane size, and beyond the file.
  const auto huge = raw_file("huge.safetensors", ok, 8, uint64_t{1} << 40);
  expect_error([&] { st::File f(huge); }, {huge, "header length"});
  const auto beyond = raw_file("beyond.safetensors", ok, 8, ok.size() + 100);
  expect_error([&] { st::File f(beyond); }, {beyond, "exceeds the file size"});
  // Not JSON.
  const auto garbage = raw_file("garbage.safetensors", "{not json", 0);
  expect_error([&] { st::File f(garbage); }, {garbage, "JSON"});
  // Data cut short: the tensor's end is past the buffer.
  const auto cut = raw_file("cut.safetensors", ok, 5);
  expect_error([&] { st::File f(cut); }, {cut, "'w'", "truncated"});
  // Byte size disagrees with dtype x shape.
  const auto size =
      raw_file("size.safetensors", R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8);
  expect_error([&] { st::File f(size); }, {size, "'w'", "needs 12"});
  // Overlapping tensors.
  const auto overlap = raw_file("overlap.safetensors",
                                R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                R"("y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                12);
  expect_error([&] { st::File f(overlap); }, {overlap, "'y'", "overlaps", "'x'"});
  // Unsupported dtype.
  const auto dtype = raw_file("dtype.safetensors",
                              R"({"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", 2);
  expect_error([&] { st::File f(dtype); }, {dtype, "'w'", "F8_E4M3"});
  // Missing fields, reversed offsets.
  const auto fields = raw_file("fields.safetensors", R"({"w":{"dtype":"F32"}})", 0);
  expect_error([&] { st::File f(fields); }, {fields, "'w'", "data_offsets"});
  const auto reversed = raw_file("reversed.safetensors",
                                 R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", 4);
  expect_error([&] { st::File f(reversed); }, {reversed, "'w'", "reversed"});
  // Missing file and missing folder contents.
  expect_error([&] { st::File f((dir_ / "nope.safetensors").string()); }, {"nope.safetensors"});
  expect_error([&] { st::Checkpoint c(dir_.string()); }, {"model.safetensors"});
}

TEST_F(SafetensorsTest, WriterRejectsInconsistentTensor) {
  std::vector<float> a(4);
  const std::string path = (dir_ / "bad.safetensors").string();
  expect_error(
      [&] {
        st::write_file(path, {{"a", st::DType::f32, {5}, a.data(), 16}});
      },
      {"'a'", "needs 20"});
  EXPECT_FALSE(fs::exists(path));
}
