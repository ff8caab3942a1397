// A TensorBoard event-file writer of our own (no TensorFlow, no protobuf library): TFRecord
// framing (uint64 length, masked CRC32C of the length, data, masked CRC32C of the data) around
// hand-encoded tensorflow.Event protos holding scalar summaries. The real tensorboard package
// reads these files (scripts/check_tensorboard_events.py).
#pragma once

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "grpo/core/metrics.h"

namespace grpo::tensorboard {

// CRC-32C (Castagnoli), as used by TFRecord; crc32c("123456789") == 0xE3069283.
uint32_t crc32c(const void* data, size_t size);
// TFRecord's masking: rotate right by 15 bits, then add 0xa282ead8.
uint32_t masked_crc32c(const void* data, size_t size);

// One TFRecord: length (u64 LE), masked CRC of those 8 bytes (u32 LE), data, masked CRC of data.
std::string frame_record(const std::string& data);

// Event{wall_time = 1, step = 2, file_version = 3} - the first record of every event file.
std::string encode_file_version_event(double wall_time);
// Event{wall_time = 1, step = 2, summary = 5 {value = 1 {tag = 1, simple_value = 2}}}.
std::string encode_scalars_event(double wall_time, int64_t step,
                                 const std::vector<std::pair<std::string, double>>& scalars);

// Event{wall_time = 1, step = 2, summary = 5 {value = 1 {tag = 1, metadata = 9 {plugin_data = 1
// {plugin_name = 1: "text"}}, tensor = 8 {dtype = 1: DT_STRING (7), tensor_shape = 2 {},
// string_val = 8: text}}}}: what TensorBoard's Text tab shows (markdown).
std::string encode_text_event(double wall_time, int64_t step, const std::string& tag,
                              const std::string& text);

// The records of an event file, in order. Reading stops at the first torn or corrupt record
// (a process killed mid-write); `valid_bytes` is where the intact prefix ends.
struct RecordScan {
  std::vector<std::string> records;
  std::vector<uint64_t> offsets;  // start of each record
  uint64_t valid_bytes = 0;
};
RecordScan read_records(const std::string& path);
// The step field of an encoded Event (0 when absent, as protobuf defines).
int64_t event_step(const std::string& event);

// Writes events.out.tfevents.<unix time>.<host>.<pid> into `dir`. On resume, the event files
// already in `dir` are cut after their last event with step <= *resume_step (and after their last
// intact record), so a resumed run's curves have no duplicate steps.
class EventFileWriter {
 public:
  EventFileWriter(const std::string& dir, std::optional<int64_t> resume_step);
  // One Event with every metric of the step as a scalar; flushed to the OS.
  void write(const metrics::StepMetrics& metrics);
  void write(const metrics::StepMetrics& metrics, double wall_time);
  // One text summary (markdown) at `step`; cut on resume like the scalars.
  void write_text(int64_t step, const std::string& tag, const std::string& markdown);
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& event);
  std::string path_;
  std::ofstream out_;
};

// Seconds since the epoch, as Event.wall_time.
double wall_time_now();

}  // namespace grpo::tensorboard
