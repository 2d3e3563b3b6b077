// libFuzzer target: kvtier-sim's trace parser (tools/sim/trace.h) on arbitrary bytes, as
// `kvtier-sim --trace FILE [--skip-bad-lines] --json` reads them. Every input must load or fail
// with InvalidArgument naming a line; with skipping, the counts must add up, every accepted
// request must honour the block-count rule, and the first error must be printable ASCII (it is
// quoted in the JSON report and on a terminal).
//
// Input: byte 0 bit 0 turns skipping on, bit 1 turns the block-count check off, bits 2-7 pick
// the block size (2^(bits % 10) tokens: 9 is Mooncake's 512); the rest is the file.
#include <cstdint>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "tools/sim/trace.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

bool Printable(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c >= 0x7f) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  kvt::sim::LoadOptions o;
  o.skip_bad_lines = (data[0] & 1) != 0;
  o.check_block_count = (data[0] & 2) == 0;
  o.block_tokens = 1u << ((data[0] >> 2) % 10);  // 1 to 512 (Mooncake's)
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  kvt::sim::LoadStats st;
  auto t = kvt::sim::ParseMooncakeJsonl(text, "fuzz.jsonl", o, &st);
  if (!t.ok()) {
    Check(!o.skip_bad_lines);
    Check(t.status().code() == kvt::Code::kInvalidArgument);
    Check(t.status().message().rfind("fuzz.jsonl:", 0) == 0);
    Check(Printable(t.status().message()));
    return 0;
  }
  Check(st.blank_lines + st.bad_lines + t->size() == st.lines);
  Check(st.bad_lines == 0 || Printable(st.first_error));
  // The report as --json writes it: a strict dump must not throw.
  const nlohmann::json j = {{"lines", st.lines}, {"first_error", st.first_error}};
  (void)j.dump();
  uint64_t prev = 0;
  for (size_t i = 0; i < t->size(); ++i) {
    const kvt::sim::Request r = t->at(i);
    Check(i == 0 || r.timestamp_ms >= prev);  // sorted by arrival
    prev = r.timestamp_ms;
    if (o.check_block_count) {
      const uint64_t want = r.input_length / o.block_tokens + (r.input_length % o.block_tokens != 0);
      Check(r.hash_ids.size() == want);
    }
  }
  return 0;
}
