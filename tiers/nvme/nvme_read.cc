// NvmeTier: the read path. Single reads and batches share one routine: every block's record
// header and payload are submitted together, the ring keeps up to io_depth requests in flight,
// and each block is verified as soon as its own requests completed, while the others still fly.
#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "tiers/nvme/nvme_internal.h"
#include "tiers/nvme/segment_format.h"

namespace kvt {

Status NvmeTier::Read(uint64_t ns, const Hash128& key, void* dst, size_t dst_bytes,
                      BlockMeta* out) {
  NvmeReadItem item;
  item.ns = ns;
  item.key = key;
  item.dst = dst;
  item.dst_bytes = dst_bytes;
  ReadBatch({&item, 1});
  if (item.status.ok() && out != nullptr) *out = item.meta;
  return item.status;
}

size_t NvmeTier::ReadBatch(std::span<NvmeReadItem> items, const ItemDone& done) {
  if (items.empty()) return 0;
  Add(c_->reads, items.size());
  std::vector<ReadOp> ops;
  std::vector<NvmeEntry> stale;
  ops.reserve(items.size());
  auto settle = [&](size_t i, Status s) {  // an item that needs no read
    items[i].status = std::move(s);
    if (done) done(i);
  };
  for (size_t i = 0; i < items.size(); ++i) {
    NvmeReadItem& it = items[i];
    ReadOp op;
    op.e.ns = it.ns;
    op.e.key = it.key;
    if (!index_->Find(it.ns, it.key, &op.e.loc, /*mark_hit=*/true)) {
      Add(c_->misses);
      settle(i, Status::NotFound("not in the NVMe tier"));
      continue;
    }
    if (segs_[op.e.loc.segment]->generation.load() != op.e.loc.generation) {
      stale.push_back(op.e);  // its segment was reclaimed: swept here, lazily
      Add(c_->misses);
      settle(i, Status::NotFound("NVMe entry is stale (segment reclaimed)"));
      continue;
    }
    if (it.dst == nullptr || it.dst_bytes < op.e.loc.payload_bytes) {
      settle(i, Status::InvalidArgument("NVMe read: buffer of " + std::to_string(it.dst_bytes) +
                                        " bytes for a " + std::to_string(op.e.loc.payload_bytes) +
                                        "-byte block"));
      continue;
    }
    op.dst = static_cast<uint8_t*>(it.dst);
    op.dst_bytes = it.dst_bytes;
    op.item = i;
    ops.push_back(op);
  }
  if (!stale.empty() && !opts_.read_only) {
    auto n = index_->EraseIfAt(stale);
    if (n.ok() && *n > 0) Add(c_->stale_swept, *n);
  }
  size_t ok = 0;
  // Each op's verdict becomes its item's status as soon as the op finished (see ItemDone).
  auto settle_op = [&](ReadOp& op) {
    op.settled = true;
    NvmeReadItem& it = items[op.item];
    it.status = SettleRead(op);
    if (it.status.ok()) {
      it.meta = op.meta;
      ++ok;
    }
    if (done) done(op.item);
  };
  if (!ops.empty()) {
    IoLease ctx(this);
    ReadRecords(*ctx, ops, settle_op);
  }
  for (ReadOp& op : ops) {
    if (!op.settled) settle_op(op);  // never submitted (no memory for its buffers, no file)
  }
  return ok;
}

// The status a finished op gives its caller, with the counters and index repairs it implies.
Status NvmeTier::SettleRead(const ReadOp& op) {
  switch (op.verdict) {
    case Verdict::kOk:
      Add(c_->hits);
      Add(c_->bytes_out, op.e.loc.payload_bytes);
      return Status::Ok();
    case Verdict::kIoError:
      Add(c_->io_errors);
      // Whatever errno the device gave, a failed read is an I/O error (never "no space").
      return op.status.code() == Code::kIoError ? op.status : Status::IoError(op.status.ToString());
    case Verdict::kCorrupt:
      DropCorrupt(op.e, op.status);
      Add(c_->misses);
      return Status::NotFound("NVMe record failed verification, dropped: " + op.status.message());
    case Verdict::kStale:
      if (!opts_.read_only) {
        // Gone with its segment's old generation: sweep it (a no-op when a reclaim did).
        auto n = index_->EraseIfAt({&op.e, 1});
        if (n.ok() && *n > 0) Add(c_->stale_swept, *n);
      }
      Add(c_->misses);
      return Status::NotFound("NVMe entry is stale (segment reclaimed during the read)");
  }
  return Status::Internal("NVMe read: unknown verdict");
}

Status NvmeTier::ReadRecord(IoContext& ctx, const NvmeEntry& e, void* dst, size_t dst_bytes,
                            BlockMeta* out, Verdict* verdict) {
  ReadOp op;
  op.e = e;
  op.dst = static_cast<uint8_t*>(dst);
  op.dst_bytes = dst_bytes;
  ReadRecords(ctx, {&op, 1});
  *verdict = op.verdict;
  if (op.verdict == Verdict::kOk && out != nullptr) *out = op.meta;
  return op.status;
}

void NvmeTier::ReadRecords(IoContext& ctx, std::span<ReadOp> ops,
                           const std::function<void(ReadOp&)>& finished) {
  // Plan: where each payload lands. A 4 KiB-aligned destination takes whole 4 KiB blocks
  // directly (O_DIRECT needs aligned buffer, offset and length); only a partial last block, when
  // the destination is not rounded up to 4 KiB, goes through the stage. Anything else (unaligned
  // destination, compressed record) is staged whole and copied or decompressed.
  const bool direct_io = direct_io_.load();
  size_t stage_bytes = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    ReadOp& op = ops[i];
    Segment& seg = *segs_[op.e.loc.segment];
    op.gen_before = seg.generation.load();
    op.fd = seg.fd_raw.load();
    op.hdr_off = i * kRecordHeaderBytes;
    const size_t stored = op.e.loc.stored_bytes;
    const size_t read_len = AlignUp(stored, kNvmeAlign);
    if (op.e.loc.codec == Codec::kNone && !direct_io) {
      op.direct_len = stored;  // buffered I/O: any length, any alignment
    } else if (op.e.loc.codec == Codec::kNone && IsAligned(op.dst)) {
      op.direct_len = op.dst_bytes >= read_len ? read_len : read_len - kNvmeAlign;
      op.stage_len = read_len - op.direct_len;
    } else {
      op.bounce = true;
      op.stage_len = read_len;
      if (op.e.loc.codec == Codec::kNone) Add(c_->unaligned_copies);
    }
    op.stage_off = stage_bytes;
    stage_bytes += op.stage_len;
  }
  uint8_t* hdrs = ctx.Headers(ops.size());
  uint8_t* stage = stage_bytes > 0 ? ctx.Bounce(stage_bytes) : nullptr;
  const bool no_mem = hdrs == nullptr || (stage_bytes > 0 && stage == nullptr);

  ctx.reqs.clear();
  std::vector<uint32_t> req_op;
  for (size_t i = 0; i < ops.size(); ++i) {
    ReadOp& op = ops[i];
    if (no_mem) {
      op.verdict = Verdict::kIoError;
      op.status = Status::Internal("out of memory for read buffers");
      continue;
    }
    if (op.fd < 0) {
      op.verdict = Verdict::kCorrupt;
      op.status = Status::Corruption("segment file missing");
      continue;
    }
    const uint64_t payload_off = op.e.loc.offset + kRecordHeaderBytes;
    op.first_req = ctx.reqs.size();
    ctx.reqs.push_back(
        IoRequest::Read(op.fd, hdrs + op.hdr_off, kRecordHeaderBytes, op.e.loc.offset));
    if (op.direct_len > 0) {
      ctx.reqs.push_back(IoRequest::Read(op.fd, op.dst, op.direct_len, payload_off,
                                         FixedIndex(ctx, op.dst, op.direct_len)));
    }
    if (op.stage_len > 0) {
      uint8_t* st = stage + op.stage_off;
      ctx.reqs.push_back(IoRequest::Read(op.fd, st, op.stage_len, payload_off + op.direct_len,
                                         FixedIndex(ctx, st, op.stage_len)));
    }
    op.nreq = static_cast<uint32_t>(ctx.reqs.size() - op.first_req);
    op.pending = op.nreq;
    req_op.insert(req_op.end(), op.nreq, static_cast<uint32_t>(i));
  }
  if (ctx.reqs.empty()) return;
  Status ignored = ctx.io->Execute(ctx.reqs, [&](size_t r) {
    ReadOp& op = ops[req_op[r]];
    if (--op.pending == 0) {
      FinishRead(ctx, op);
      if (finished) finished(op);
    }
  });
  (void)ignored;  // each op's outcome is in its verdict
}

// Verifies one op whose requests all finished. Runs inside Execute, while others are in flight.
void NvmeTier::FinishRead(IoContext& ctx, ReadOp& op) {
  Segment& seg = *segs_[op.e.loc.segment];
  auto fail = [&](Verdict v, Status s) {
    // A mismatch seen while the segment was being reclaimed is the race, not corruption.
    op.verdict =
        (v == Verdict::kCorrupt && seg.generation.load() != op.gen_before) ? Verdict::kStale : v;
    op.status = std::move(s);
  };
  const IoRequest* reqs = ctx.reqs.data() + op.first_req;
  bool eof = false;
  Status io;
  for (uint32_t k = 0; k < op.nreq; ++k) {
    Add(c_->bytes_read, reqs[k].bytes_done);
    eof = eof || reqs[k].hit_eof;
    if (io.ok() && !reqs[k].result.ok()) io = reqs[k].result;
  }
  // End of file inside a fallocate'd segment means the file was truncated: the record is gone.
  if (!io.ok()) return fail(eof ? Verdict::kCorrupt : Verdict::kIoError, io);
  const uint8_t* hdr = ctx.headers.data() + op.hdr_off;
  const uint8_t* stage = op.stage_len > 0 ? ctx.bounce.data() + op.stage_off : nullptr;
  RecordHeader h;
  Status hs = DecodeRecordHeader(hdr, &h);
  if (!hs.ok()) return fail(Verdict::kCorrupt, hs);
  if (h.generation > op.e.loc.generation) {
    // A genuine record (its header checksum verified) of a later generation: the segment was
    // reclaimed and rewritten, and the entry's deletion was lost in a crash (the reclaim does
    // not sync; see StartSegmentLocked). Stale, not corrupt.
    op.verdict = Verdict::kStale;
    op.status = Status::NotFound("NVMe entry is stale (its space holds a newer record)");
    return;
  }
  if (h.generation != op.e.loc.generation) {
    return fail(Verdict::kCorrupt,
                Status::Corruption("record generation " + std::to_string(h.generation) +
                                   ", index says " + std::to_string(op.e.loc.generation)));
  }
  if (h.ns != op.e.ns || !(h.key == op.e.key)) {
    return fail(Verdict::kCorrupt, Status::Corruption("record holds another namespace or key"));
  }
  if (h.stored_bytes != op.e.loc.stored_bytes || h.payload_bytes != op.e.loc.payload_bytes ||
      h.codec != static_cast<uint8_t>(op.e.loc.codec) || h.payload_checksum != op.e.loc.checksum) {
    return fail(Verdict::kCorrupt, Status::Corruption("record header disagrees with the index"));
  }
  if (h.codec == static_cast<uint8_t>(Codec::kZstd)) {
    if (Checksum64(stage, h.stored_bytes) != h.stored_checksum) {
      return fail(Verdict::kCorrupt, Status::Corruption("payload checksum mismatch"));
    }
    Status ds = ZstdShuffleDecompress(stage, h.stored_bytes, op.dst, h.payload_bytes);
    if (!ds.ok()) return fail(Verdict::kCorrupt, ds);
    if (Checksum64(op.dst, h.payload_bytes) != h.payload_checksum) {
      return fail(Verdict::kCorrupt, Status::Corruption("decompressed payload checksum mismatch"));
    }
  } else {
    if (op.bounce) {
      std::memcpy(op.dst, stage, h.payload_bytes);
    } else if (op.direct_len < h.payload_bytes) {
      std::memcpy(op.dst + op.direct_len, stage, h.payload_bytes - op.direct_len);  // the tail
    }
    if (Checksum64(op.dst, h.payload_bytes) != h.stored_checksum) {
      return fail(Verdict::kCorrupt, Status::Corruption("payload checksum mismatch"));
    }
  }
  op.meta.ns = h.ns;
  op.meta.key = h.key;
  op.meta.parent = h.parent;
  op.meta.tokens_digest = h.tokens_digest;
  op.meta.has_tokens = (h.flags & kRecordHasTokens) != 0;
  op.meta.payload_bytes = h.payload_bytes;
  op.meta.checksum = h.payload_checksum;
  op.verdict = Verdict::kOk;
  op.status = Status::Ok();
}

}  // namespace kvt
