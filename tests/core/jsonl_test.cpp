// JSONL reading (file:line errors for each kind of malformed line) and the atomic writers.
#include "grpo/core/jsonl.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "grpo/core/error.h"

namespace fs = std::filesystem;
using grpo::jsonl::Location;

namespace {

class JsonlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("grpo_jsonl_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  // The message of the grpo::Error that reading `text` throws ("" when it does not throw).
  std::string read_error(const std::string& text) {
    std::string path = write("bad.jsonl", text);
    try {
      grpo::jsonl::read_objects(path);
    } catch (const grpo::Error& e) {
      return e.what();
    }
    return "";
  }
  size_t files_in_dir() const {
    size_t n = 0;
    for (const auto& entry : fs::directory_iterator(dir_)) n += entry.is_regular_file() ? 1 : 0;
    return n;
  }

  fs::path dir_;
};

TEST_F(JsonlTest, ReadsObjectsSkippingBlankLinesWithLineNumbers) {
  std::string path =
      write("ok.jsonl", "\xEF\xBB\xBF{\"a\": 1}\r\n\n   \n{\"b\": \"x\"}\n{\"c\": [1, 2]}");
  std::vector<size_t> lines;
  std::vector<nlohmann::json> objects;
  grpo::jsonl::for_each_object(path, [&](const nlohmann::json& o, const Location& where) {
    objects.push_back(o);
    lines.push_back(where.line);
    EXPECT_EQ(where.file, path);
  });
  ASSERT_EQ(objects.size(), 3u);
  EXPECT_EQ(objects[0]["a"], 1);
  EXPECT_EQ(objects[1]["b"], "x");
  EXPECT_EQ(objects[2]["c"][1], 2);
  EXPECT_EQ(lines, (std::vector<size_t>{1, 4, 5}));
}

// A .gz file (compressed by the gzip program, not by the reader's zlib) reads as its plain text:
// the same objects at the same lines, a line longer than the reader's 64 KiB buffer included;
// a truncated one is an error naming it.
TEST_F(JsonlTest, ReadsGzipFilesAndRefusesTruncatedOnes) {
  const std::string big(100000, 'x');
  const std::string text = "{\"a\": 1}\r\n\n{\"b\": \"" + big + "\"}\n{\"c\": 3}";
  const std::string plain = write("data.jsonl", text);
  ASSERT_EQ(std::system(("gzip -kf '" + plain + "'").c_str()), 0);
  const auto read_all = [](const std::string& path) {
    std::vector<std::pair<size_t, nlohmann::json>> out;
    grpo::jsonl::for_each_object(path, [&](const nlohmann::json& o, const Location& where) {
      out.emplace_back(where.line, o);
    });
    return out;
  };
  const auto expected = read_all(plain);
  ASSERT_EQ(expected.size(), 3u);
  EXPECT_EQ(read_all(plain + ".gz"), expected);
  EXPECT_EQ(expected[1].second["b"], big);

  std::ifstream in(plain + ".gz", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const std::string cut = write("cut.jsonl.gz", bytes.substr(0, bytes.size() / 2));
  try {
    read_all(cut);
    FAIL() << "expected an error";
  } catch (const grpo::Error& e) {
    EXPECT_NE(std::string(e.what()).find(cut + ": cannot decompress"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("truncated or corrupt"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_all((dir_ / "missing.jsonl.gz").string()), grpo::Error);
}

TEST_F(JsonlTest, InvalidJsonNamesFileAndLine) {
  std::string err = read_error("{\"a\": 1}\n{\"a\": }\n");
  EXPECT_NE(err.find("bad.jsonl:2: invalid JSON"), std::string::npos) << err;
  EXPECT_EQ(err.find("json.exception"), std::string::npos) << err;
  err = read_error("{\"a\": 1}\n\n{\"a\": 1} trailing\n");
  EXPECT_NE(err.find("bad.jsonl:3: invalid JSON"), std::string::npos) << err;
}

TEST_F(JsonlTest, NonObjectLineIsAnError) {
  EXPECT_NE(read_error("[1, 2]\n").find("bad.jsonl:1: expected a JSON object, got array"),
            std::string::npos);
  EXPECT_NE(read_error("{}\n\"text\"\n").find("bad.jsonl:2: expected a JSON object, got string"),
            std::string::npos);
}

TEST_F(JsonlTest, MissingFileIsAnError) {
  EXPECT_THROW(grpo::jsonl::read_objects((dir_ / "absent.jsonl").string()), grpo::Error);
}

TEST_F(JsonlTest, TypedFieldsNameTheLine) {
  Location where{"d.jsonl", 7};
  nlohmann::json o = {{"s", "text"}, {"i", 42}, {"f", 2.5}, {"big", 18446744073709551615ull}};
  EXPECT_EQ(grpo::jsonl::require_string(o, "s", where), "text");
  EXPECT_EQ(grpo::jsonl::require_int(o, "i", where), 42);
  EXPECT_DOUBLE_EQ(grpo::jsonl::require_number(o, "f", where), 2.5);
  EXPECT_DOUBLE_EQ(grpo::jsonl::require_number(o, "i", where), 42.0);
  EXPECT_EQ(grpo::jsonl::optional_string(o, "none", where, "dflt"), "dflt");

  auto message = [&](auto&& fn) -> std::string {
    try {
      fn();
    } catch (const grpo::Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(message([&] { grpo::jsonl::require_string(o, "zz", where); }),
            "d.jsonl:7: missing field 'zz'");
  EXPECT_EQ(message([&] { grpo::jsonl::require_string(o, "i", where); }),
            "d.jsonl:7: field 'i' must be a string, got number");
  EXPECT_EQ(message([&] { grpo::jsonl::require_int(o, "f", where); }),
            "d.jsonl:7: field 'f' must be an integer, got 2.5");
  EXPECT_EQ(message([&] { grpo::jsonl::require_int(o, "big", where); }),
            "d.jsonl:7: field 'big' is out of range: 18446744073709551615");
  EXPECT_EQ(message([&] { grpo::jsonl::optional_string(o, "i", where); }),
            "d.jsonl:7: field 'i' must be a string, got number");
}

TEST_F(JsonlTest, WriterRoundTripsAndLeavesNoTempFile) {
  std::string path = (dir_ / "out.jsonl").string();
  std::vector<nlohmann::json> objects = {{{"prompt", "1+1"}, {"answer", "2"}},
                                         {{"unicode", "\xC3\xA9t\xC3\xA9"}, {"n", 3}}};
  grpo::jsonl::write_objects(path, objects);
  EXPECT_EQ(grpo::jsonl::read_objects(path), objects);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(),
            "{\"answer\":\"2\",\"prompt\":\"1+1\"}\n{\"n\":3,\"unicode\":\"\xC3\xA9t\xC3\xA9\"}\n");
  EXPECT_EQ(files_in_dir(), 1u);
}

TEST_F(JsonlTest, UncommittedWriterLeavesOldFileIntact) {
  std::string path = write("keep.jsonl", "{\"old\": true}\n");
  {
    grpo::jsonl::Writer writer(path);
    writer.write({{"new", true}});
    EXPECT_EQ(files_in_dir(), 2u);  // the temp file sits next to the target
    // Destroyed without commit(), as when an exception unwinds through the caller.
  }
  EXPECT_EQ(grpo::jsonl::read_objects(path), (std::vector<nlohmann::json>{{{"old", true}}}));
  EXPECT_EQ(files_in_dir(), 1u);

  grpo::jsonl::Writer writer(path);
  writer.write({{"new", true}});
  EXPECT_THROW(writer.write(nlohmann::json::array({1})), grpo::Error);
  writer.commit();
  EXPECT_EQ(writer.lines(), 1u);
  EXPECT_EQ(grpo::jsonl::read_objects(path), (std::vector<nlohmann::json>{{{"new", true}}}));
}

TEST_F(JsonlTest, AtomicWriterStreamsLargeFiles) {
  std::string path = (dir_ / "big.txt").string();
  grpo::jsonl::AtomicWriter out(path);
  std::string chunk(1000, 'x');
  for (int i = 0; i < 3000; ++i) out.write(chunk);  // crosses the 1 MiB buffer several times
  out.commit();
  EXPECT_EQ(fs::file_size(path), 3000u * 1000u);
  EXPECT_THROW(out.write("more"), grpo::Error);
}

TEST_F(JsonlTest, WriterIntoMissingDirectoryFails) {
  EXPECT_THROW(grpo::jsonl::AtomicWriter((dir_ / "no" / "such" / "f.jsonl").string()), grpo::Error);
}

}  // namespace
