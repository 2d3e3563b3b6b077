// Request traces for kvtier-sim: Mooncake's jsonl format (one request per line:
// {"timestamp": ms, "input_length": tokens, "output_length": tokens, "hash_ids": [ids...]},
// block = 512 tokens, ids are prefix hashes) read into a compact in-memory form, and written back
// (the synthetic generator's output).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"

namespace kvt::sim {

// One request as the simulator sees it. hash_ids points into storage owned by whoever produced it
// (a Trace or the generator) and is valid until the producer's next call.
struct Request {
  uint64_t timestamp_ms = 0;
  uint64_t input_length = 0;
  uint64_t output_length = 0;
  std::span<const uint64_t> hash_ids;
};

// A whole trace in memory: ids in one flat array, requests in arrival order.
class Trace {
 public:
  void Add(uint64_t timestamp_ms, uint64_t input_length, uint64_t output_length,
           std::span<const uint64_t> ids);
  size_t size() const { return recs_.size(); }
  bool empty() const { return recs_.empty(); }
  Request at(size_t i) const;
  uint64_t total_blocks() const { return ids_.size(); }
  // Stable sort by timestamp (file order breaks ties). Returns whether anything moved.
  bool SortByArrival();
  uint64_t span_ms() const;

 private:
  struct Rec {
    uint64_t ts, in, out;
    uint64_t off;
    uint32_t n;
  };
  std::vector<Rec> recs_;
  std::vector<uint64_t> ids_;
};

struct LoadOptions {
  bool skip_bad_lines = false;
  uint32_t block_tokens = 512;
  // Require len(hash_ids) == ceil(input_length / block_tokens), as in the Mooncake files.
  bool check_block_count = true;
};

struct LoadStats {
  uint64_t lines = 0;        // lines read, blank ones included
  uint64_t blank_lines = 0;  // skipped silently
  uint64_t bad_lines = 0;    // skipped with --skip-bad-lines
  std::string first_error;   // the first bad line's message ("line N: ...")
  bool reordered = false;    // timestamps were not sorted; the trace was stable-sorted
};

// Parses one jsonl line into a request. Error messages say what is wrong, without the line number.
Status ParseMooncakeLine(std::string_view line, const LoadOptions& o, uint64_t* ts, uint64_t* in,
                         uint64_t* out, std::vector<uint64_t>* ids);

// Reads a whole file. Without skip_bad_lines the first malformed line stops the load with
// InvalidArgument "FILE:LINE: what is wrong"; with it, bad lines are counted and skipped.
StatusOr<Trace> LoadMooncakeJsonl(const std::string& path, const LoadOptions& o,
                                  LoadStats* stats);
StatusOr<Trace> ParseMooncakeJsonl(std::string_view text, const std::string& name,
                                   const LoadOptions& o, LoadStats* stats);

// Appends one request as a Mooncake jsonl line (with '\n').
void AppendMooncakeLine(const Request& r, std::string* out);

}  // namespace kvt::sim
