// Interleaved rounds and the statistics the report is built from.
//
// Shared machines drift (the disk by 2x within seconds), so a figure alone says little. Every test
// of a block size runs once per round, all in one sequence, and a path is compared with its limit
// and baselines round by round: the ratio of two figures taken seconds apart is far steadier than
// either figure. The report gives the median of those per-round ratios beside the raw medians.
#include <unistd.h>

#include <set>

#include "bench/bench.h"

namespace kvt::bench {

StatusOr<std::vector<Row>> RunInterleaved(std::vector<Test>& tests, int rounds) {
  std::vector<std::vector<double>> values(tests.size());
  std::vector<std::string> details(tests.size());
  for (int r = 0; r < rounds; ++r) {
    for (size_t k = 0; k < tests.size(); ++k) {
      // Odd rounds run in reverse, so no path always runs right after the same neighbour.
      Test& t = tests[r % 2 == 0 ? k : tests.size() - 1 - k];
      const size_t idx = r % 2 == 0 ? k : tests.size() - 1 - k;
      // Settle the disk, untimed: a durable path must not pay for the writeback of what the
      // test before it left dirty (an fdatasync here flushes the whole device cache).
      if (t.block_bytes > 0) ::sync();
      if (t.prepare) {
        Status p = t.prepare();
        if (!p.ok()) return p.WithContext("preparing " + t.path + " (" + HumanSize(t.block_bytes) + ")");
      }
      auto s = t.run();
      if (!s.ok()) return s.status().WithContext(t.path + " (" + HumanSize(t.block_bytes) + ")");
      values[idx].push_back(t.op_rate ? s->OpsPerSec() : s->Gbps());
      if (!s->detail.empty()) details[idx] = s->detail;
    }
  }
  std::map<std::string, size_t> by_path;
  for (size_t k = 0; k < tests.size(); ++k) by_path[tests[k].path] = k;
  auto ratio = [&](size_t a, const std::string& other) {
    auto it = by_path.find(other);
    if (it == by_path.end()) return static_cast<double>(NAN);
    std::vector<double> q;
    for (int r = 0; r < rounds; ++r) {
      double d = values[it->second][r];
      if (d > 0) q.push_back(values[a][r] / d);
    }
    return Median(q);
  };
  std::vector<Row> rows;
  for (size_t k = 0; k < tests.size(); ++k) {
    const Test& t = tests[k];
    Row row;
    row.path = t.path;
    row.kind = t.kind;
    row.block_bytes = t.block_bytes;
    row.op_rate = t.op_rate;
    row.values = values[k];
    row.median = Median(values[k]);
    row.limit = t.limit;
    row.note = t.note;
    if (!details[k].empty()) row.note += " (" + details[k] + ")";
    if (!t.limit.empty()) row.ratio_to_limit = ratio(k, t.limit);
    for (const std::string& b : t.baselines) {
      // A row kept by --only as another row's baseline may name a baseline that did not run.
      if (by_path.count(b) > 0) row.ratio_to_baseline[b] = ratio(k, b);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

void FilterTests(const std::vector<std::string>& only, std::vector<Test>* tests) {
  if (only.empty()) return;
  std::set<std::string> keep;
  for (const Test& t : *tests) {
    for (const std::string& o : only) {
      if (t.path.find(o) == std::string::npos) continue;
      keep.insert(t.path);
      if (!t.limit.empty()) keep.insert(t.limit);
      keep.insert(t.baselines.begin(), t.baselines.end());
    }
  }
  std::vector<Test> kept;
  for (Test& t : *tests) {
    if (keep.count(t.path) > 0) kept.push_back(std::move(t));
  }
  *tests = std::move(kept);
}

}  // namespace kvt::bench
