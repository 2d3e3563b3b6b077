// NvmeTier: index catch-up at open. Flush does not sync the index (see "Durability" in
// nvme_tier.h), so a crash may lose index puts whose records are on the device. Each segment's
// records past its replay mark are read in log order, verified (header checksum, generation,
// bounds, stored-payload checksum) and indexed; the first record that does not verify ends the
// segment's log. An entry already indexed at a later place of the same key wins.
#include <algorithm>

#include "base/log.h"
#include "tiers/nvme/nvme_internal.h"
#include "tiers/nvme/segment_format.h"

namespace kvt {

Status NvmeTier::ReplaySegments(std::vector<uint64_t>& max_end) {
  std::vector<uint32_t> order;
  for (uint32_t id = 0; id < num_segments_; ++id) {
    if (segs_[id]->fd.valid() && segs_[id]->generation.load() != 0) order.push_back(id);
  }
  // Oldest generation first: a key written twice ends with its newer record.
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return segs_[a]->generation.load() < segs_[b]->generation.load();
  });
  IoLease ctx(this);
  uint64_t replayed = 0;
  for (uint32_t id : order) {
    Segment& s = *segs_[id];
    const uint64_t gen = s.generation.load();
    const int fd = s.fd_raw.load();
    // Without a mark of this generation (a directory written before marks existed, or no put
    // with a mark reached the index), every record below the indexed high-water mark is indexed:
    // puts of one generation without a mark are only reinsertions, written before any other.
    NvmeIndex::Mark mark;
    uint64_t off = max_end[id];
    if (index_->GetMark(id, &mark) && mark.generation == gen) off = mark.end;
    off = std::max<uint64_t>(off, kSegmentHeaderBytes);
    std::vector<NvmeEntry> found;
    std::vector<Segment::Ref> refs;
    for (;;) {
      if (off + kRecordHeaderBytes > opts_.segment_bytes) break;
      uint8_t* hdr = ctx->Headers(1);
      if (hdr == nullptr) return Status::Internal("out of memory for replay");
      IoRequest hr = IoRequest::Read(fd, hdr, kRecordHeaderBytes, off);
      if (!ctx->io->Execute({&hr, 1}).ok()) break;
      Add(c_->replay_bytes_read, hr.bytes_done);
      RecordHeader h;
      if (!DecodeRecordHeader(hdr, &h).ok() || h.generation != gen || h.stored_bytes == 0 ||
          off + RecordBytes(h.stored_bytes) > opts_.segment_bytes) {
        break;
      }
      const size_t len = AlignUp(h.stored_bytes, kNvmeAlign);
      uint8_t* buf = ctx->Bounce(len);
      if (buf == nullptr) return Status::Internal("out of memory for replay");
      IoRequest pr = IoRequest::Read(fd, buf, len, off + kRecordHeaderBytes);
      if (!ctx->io->Execute({&pr, 1}).ok()) break;
      Add(c_->replay_bytes_read, pr.bytes_done);
      if (Checksum64(buf, h.stored_bytes) != h.stored_checksum) break;  // torn or damaged
      NvmeEntry e;
      e.ns = h.ns;
      e.key = h.key;
      e.loc.segment = id;
      e.loc.generation = gen;
      e.loc.offset = off;
      e.loc.stored_bytes = h.stored_bytes;
      e.loc.payload_bytes = h.payload_bytes;
      e.loc.checksum = h.payload_checksum;
      e.loc.codec = static_cast<Codec>(h.codec);
      e.loc.has_tokens = (h.flags & kRecordHasTokens) != 0;
      e.loc.parent = h.parent;
      e.loc.tokens_digest = h.tokens_digest;
      off += RecordBytes(h.stored_bytes);
      NvmeLocation cur;
      if (index_->Find(e.ns, e.key, &cur) &&
          (cur.generation > gen || (cur.generation == gen && cur.offset >= e.loc.offset))) {
        continue;  // indexed already, or a newer record of the key is
      }
      found.push_back(e);
      refs.push_back({e.ns, e.key, e.loc.offset});
    }
    max_end[id] = std::max(max_end[id], off);
    if (found.empty()) continue;  // nothing new: the stored mark (if any) stays right
    NvmeIndex::Mark m{id, gen, off};
    KVT_RETURN_IF_ERROR(index_->Put(found, {&m, 1}));
    s.records.insert(s.records.end(), refs.begin(), refs.end());
    replayed += found.size();
  }
  Add(c_->records_replayed, replayed);
  if (replayed == 0) return Status::Ok();
  KVT_LOG(kInfo, "NVMe tier: indexed " + std::to_string(replayed) +
                     " records found past the index's replay marks");
  // A checkpoint: the next open starts from here.
  Add(c_->index_syncs);
  return index_->Sync();
}

}  // namespace kvt
