#include "tools/sim/trace.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <numeric>

#include <nlohmann/json.hpp>

namespace kvt::sim {

void Trace::Add(uint64_t ts, uint64_t in, uint64_t out, std::span<const uint64_t> ids) {
  recs_.push_back(Rec{ts, in, out, ids_.size(), static_cast<uint32_t>(ids.size())});
  ids_.insert(ids_.end(), ids.begin(), ids.end());
}

Request Trace::at(size_t i) const {
  const Rec& r = recs_[i];
  return Request{r.ts, r.in, r.out, std::span<const uint64_t>(ids_.data() + r.off, r.n)};
}

bool Trace::SortByArrival() {
  if (std::is_sorted(recs_.begin(), recs_.end(),
                     [](const Rec& a, const Rec& b) { return a.ts < b.ts; }))
    return false;
  std::stable_sort(recs_.begin(), recs_.end(),
                   [](const Rec& a, const Rec& b) { return a.ts < b.ts; });
  return true;
}

uint64_t Trace::span_ms() const {
  if (recs_.empty()) return 0;
  uint64_t lo = UINT64_MAX, hi = 0;
  for (const Rec& r : recs_) {
    lo = std::min(lo, r.ts);
    hi = std::max(hi, r.ts);
  }
  return hi - lo;
}

namespace {

// A JSON number that is a non-negative integer: nlohmann keeps those as unsigned (or signed >= 0).
bool AsUint(const nlohmann::json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer()) {
    const int64_t s = v.get<int64_t>();
    if (s < 0) return false;
    *out = static_cast<uint64_t>(s);
    return true;
  }
  return false;
}

// Bytes outside printable ASCII as \xNN: a message quotes the line, which may hold anything (a
// byte that is not UTF-8 would make the JSON report throw, and garble a terminal).
std::string Printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace

Status ParseMooncakeLine(std::string_view line, const LoadOptions& o, uint64_t* ts, uint64_t* in,
                         uint64_t* out, std::vector<uint64_t>* ids) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line.begin(), line.end());
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is 1-based; report it as a column.
    std::string what = e.what();
    const size_t colon = what.rfind(": ");
    return Status::InvalidArgument("invalid JSON at column " + std::to_string(e.byte) +
                                   (colon == std::string::npos ? "" : what.substr(colon)));
  } catch (const nlohmann::json::exception& e) {
    // Not a syntax error but a value the parser cannot hold (a number such as 7e6600 overflows:
    // out_of_range.406); found by fuzz_trace.
    return Status::InvalidArgument(std::string("invalid JSON value: ") + e.what());
  }
  if (!j.is_object()) return Status::InvalidArgument("expected a JSON object");
  struct Field {
    const char* name;
    uint64_t* dst;
  };
  const Field fields[] = {{"timestamp", ts}, {"input_length", in}, {"output_length", out}};
  for (const Field& f : fields) {
    auto it = j.find(f.name);
    if (it == j.end()) return Status::InvalidArgument(std::string("missing field '") + f.name + "'");
    if (!AsUint(*it, f.dst)) {
      return Status::InvalidArgument(std::string("field '") + f.name +
                                     "' is not a non-negative integer: " + it->dump());
    }
  }
  auto h = j.find("hash_ids");
  if (h == j.end()) return Status::InvalidArgument("missing field 'hash_ids'");
  if (!h->is_array()) return Status::InvalidArgument("field 'hash_ids' is not an array");
  ids->clear();
  ids->reserve(h->size());
  for (size_t k = 0; k < h->size(); ++k) {
    uint64_t id;
    if (!AsUint((*h)[k], &id)) {
      return Status::InvalidArgument("hash_ids[" + std::to_string(k) +
                                     "] is not a non-negative integer: " + (*h)[k].dump());
    }
    ids->push_back(id);
  }
  if (o.check_block_count) {
    // Rounded up without overflow: input_length may be any 64-bit value.
    const uint64_t want = *in / o.block_tokens + (*in % o.block_tokens != 0 ? 1 : 0);
    if (ids->size() != want) {
      return Status::InvalidArgument(
          "hash_ids has " + std::to_string(ids->size()) + " entries but input_length " +
          std::to_string(*in) + " needs ceil(" + std::to_string(*in) + "/" +
          std::to_string(o.block_tokens) + ") = " + std::to_string(want));
    }
  }
  return Status::Ok();
}

StatusOr<Trace> ParseMooncakeJsonl(std::string_view text, const std::string& name,
                                   const LoadOptions& o, LoadStats* stats) {
  LoadStats local;
  LoadStats& st = stats ? *stats : local;
  st = LoadStats{};
  Trace t;
  std::vector<uint64_t> ids;
  size_t pos = 0;
  uint64_t lineno = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++lineno;
    ++st.lines;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) {
      ++st.blank_lines;
      continue;
    }
    uint64_t ts = 0, in = 0, out = 0;
    Status s = ParseMooncakeLine(line, o, &ts, &in, &out, &ids);
    if (!s.ok()) {
      std::string msg = Printable(name + ":" + std::to_string(lineno) + ": " + s.message());
      if (!o.skip_bad_lines) {
        return Status::InvalidArgument(msg + " (use --skip-bad-lines to skip malformed lines)");
      }
      if (st.bad_lines++ == 0) st.first_error = msg;
      continue;
    }
    t.Add(ts, in, out, ids);
  }
  st.reordered = t.SortByArrival();
  return t;
}

StatusOr<Trace> LoadMooncakeJsonl(const std::string& path, const LoadOptions& o,
                                  LoadStats* stats) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return Status::FromErrno(errno, "open " + path);
  std::string text;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  const bool err = std::ferror(f);
  std::fclose(f);
  if (err) return Status::IoError("read " + path + " failed");
  return ParseMooncakeJsonl(text, path, o, stats);
}

void AppendMooncakeLine(const Request& r, std::string* out) {
  char head[128];
  std::snprintf(head, sizeof head,
                "{\"timestamp\": %llu, \"input_length\": %llu, \"output_length\": %llu, "
                "\"hash_ids\": [",
                static_cast<unsigned long long>(r.timestamp_ms),
                static_cast<unsigned long long>(r.input_length),
                static_cast<unsigned long long>(r.output_length));
  out->append(head);
  for (size_t i = 0; i < r.hash_ids.size(); ++i) {
    if (i) out->append(", ");
    out->append(std::to_string(r.hash_ids[i]));
  }
  out->append("]}\n");
}

}  // namespace kvt::sim
