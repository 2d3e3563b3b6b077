// The C API: argument checks, conversion between C and engine types, and the one place where
// Status becomes kvt_status_t and exceptions stop. Every argument is checked before anything
// changes, so a rejected call leaves the store, its counters and the out-parameters untouched.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <vector>

#include "kvtier/kvtier.h"
#include "src/gpu_cache.h"
#include "src/store.h"

struct kvt_options {
  kvt::Options o;
};
struct kvt_store {
  std::unique_ptr<kvt::Store> s;
};
struct kvt_ticket {
  std::unique_ptr<kvt::Ticket> t;
};
struct kvt_gpu_cache {
  std::unique_ptr<kvt::GpuCache> c;
};

namespace {

thread_local std::string g_last_error;

kvt_status_t Fail(kvt_status_t code, std::string msg) {
  g_last_error = std::move(msg);
  return code;
}

kvt_status_t Convert(const kvt::Status& s) {
  if (s.ok()) return KVT_OK;
  g_last_error = s.message();
  static_assert(static_cast<int>(kvt::Code::kInternal) == KVT_INTERNAL);
  return static_cast<kvt_status_t>(s.code());
}

// Runs f, turning any exception into KVT_INTERNAL with its message.
template <typename F>
kvt_status_t Guard(const char* fn, F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return Fail(KVT_INTERNAL, std::string(fn) + ": out of memory");
  } catch (const std::exception& e) {
    return Fail(KVT_INTERNAL, std::string(fn) + ": " + e.what());
  } catch (...) {
    return Fail(KVT_INTERNAL, std::string(fn) + ": unknown exception");
  }
}

#define KVT_REQUIRE(cond, msg)                                        \
  do {                                                                \
    if (!(cond)) return Fail(KVT_INVALID_ARGUMENT, std::string(msg)); \
  } while (0)

kvt::Hash128 ToHash(kvt_key k) { return kvt::Hash128{k.lo, k.hi}; }
kvt_key ToKey(const kvt::Hash128& h) { return kvt_key{h.lo, h.hi}; }

}  // namespace

extern "C" {

const char* kvt_version(void) { return "0.1.0"; }

const char* kvt_last_error(void) { return g_last_error.c_str(); }

const char* kvt_status_name(kvt_status_t s) {
  static const char* const kNames[] = {
      "KVT_OK",      "KVT_NOT_FOUND", "KVT_INVALID_ARGUMENT", "KVT_IO_ERROR",
      "KVT_CORRUPTION", "KVT_NO_SPACE", "KVT_BUSY",          "KVT_TIMEOUT",
      "KVT_UNAVAILABLE", "KVT_PERMISSION_DENIED", "KVT_INTERNAL"};
  int v = 0;  // read as int: any value may arrive from C
  static_assert(sizeof v == sizeof s);
  std::memcpy(&v, &s, sizeof v);
  if (v < KVT_OK || v > KVT_INTERNAL) return "KVT_UNKNOWN";
  return kNames[v];
}

void kvt_free(void* p) { std::free(p); }

kvt_options* kvt_options_create(void) { return new (std::nothrow) kvt_options(); }

void kvt_options_destroy(kvt_options* o) { delete o; }

kvt_status_t kvt_options_set(kvt_options* o, const char* name, const char* value) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(o != nullptr, "kvt_options_set: options is NULL");
    KVT_REQUIRE(name != nullptr, "kvt_options_set: name is NULL");
    KVT_REQUIRE(value != nullptr, std::string("kvt_options_set: value for '") + name + "' is NULL");
    return Convert(o->o.Set(name, value));
  });
}

kvt_status_t kvt_options_load_file(kvt_options* o, const char* path) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(o != nullptr, "kvt_options_load_file: options is NULL");
    KVT_REQUIRE(path != nullptr && *path != '\0', "kvt_options_load_file: path is NULL or empty");
    kvt::Status s = o->o.LoadFile(path);
    // A file that cannot be read is bad input too; keep IO codes for real I/O failures.
    if (s.code() == kvt::Code::kNotFound || s.code() == kvt::Code::kPermissionDenied) {
      return Fail(KVT_INVALID_ARGUMENT, s.message());
    }
    return Convert(s);
  });
}

kvt_status_t kvt_open(const kvt_options* o, kvt_store** out) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(o != nullptr, "kvt_open: options is NULL");
    KVT_REQUIRE(out != nullptr, "kvt_open: out is NULL");
    auto s = kvt::Store::Open(o->o);
    if (!s.ok()) return Convert(s.status());
    *out = new kvt_store{std::move(s).value()};
    return KVT_OK;
  });
}

kvt_status_t kvt_close(kvt_store* s) {
  return Guard(__func__, [&] {
    if (s == nullptr) return KVT_OK;
    kvt::Status st = s->s->Flush();
    delete s;
    return Convert(st);
  });
}

kvt_status_t kvt_flush(kvt_store* s) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(s != nullptr, "kvt_flush: store is NULL");
    return Convert(s->s->Flush());
  });
}

kvt_status_t kvt_namespace_open(kvt_store* s, const kvt_namespace_desc* d, uint64_t* ns) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(s != nullptr, "kvt_namespace_open: store is NULL");
    KVT_REQUIRE(d != nullptr, "kvt_namespace_open: desc is NULL");
    KVT_REQUIRE(ns != nullptr, "kvt_namespace_open: ns is NULL");
    KVT_REQUIRE(d->model != nullptr, "kvt_namespace_open: desc->model is NULL");
    KVT_REQUIRE(d->kv_dtype != nullptr, "kvt_namespace_open: desc->kv_dtype is NULL");
    kvt::NamespaceDesc nd;
    nd.model = d->model;
    nd.kv_dtype = d->kv_dtype;
    nd.tenant_salt = d->tenant_salt != nullptr ? d->tenant_salt : "";
    nd.adapter = d->adapter != nullptr ? d->adapter : "";
    nd.layers = d->layers;
    nd.kv_heads = d->kv_heads;
    nd.head_dim = d->head_dim;
    nd.block_tokens = d->block_tokens;
    nd.tp_rank = d->tp_rank;
    nd.flags = d->flags;
    auto id = s->s->OpenNamespace(nd);
    if (!id.ok()) return Convert(id.status());
    *ns = *id;
    return KVT_OK;
  });
}

kvt_status_t kvt_block_bytes(kvt_store* s, uint64_t ns, size_t* bytes) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(s != nullptr, "kvt_block_bytes: store is NULL");
    KVT_REQUIRE(bytes != nullptr, "kvt_block_bytes: bytes is NULL");
    auto info = s->s->Namespace(ns);
    if (!info.ok()) return Convert(info.status());
    *bytes = (*info)->block_bytes;
    return KVT_OK;
  });
}

kvt_status_t kvt_namespace_root(kvt_store* s, uint64_t ns, kvt_key* root) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(s != nullptr, "kvt_namespace_root: store is NULL");
    KVT_REQUIRE(root != nullptr, "kvt_namespace_root: root is NULL");
    auto info = s->s->Namespace(ns);
    if (!info.ok()) return Convert(info.status());
    *root = ToKey((*info)->root);
    return KVT_OK;
  });
}

// Shared argument checks of kvt_hash_tokens and kvt_match_prefix; on success *needed is the
// number of full blocks.
static kvt_status_t CheckTokenArgs(const char* fn, kvt_store* s, uint64_t ns,
                                   const int32_t* tokens, size_t n_tokens, kvt_key* keys,
                                   size_t keys_cap, size_t* n_keys, size_t* needed) {
  KVT_REQUIRE(s != nullptr, std::string(fn) + ": store is NULL");
  KVT_REQUIRE(n_keys != nullptr, std::string(fn) + ": n_keys is NULL");
  KVT_REQUIRE(tokens != nullptr || n_tokens == 0, std::string(fn) + ": tokens is NULL");
  KVT_REQUIRE(keys != nullptr || keys_cap == 0, std::string(fn) + ": keys is NULL");
  auto info = s->s->Namespace(ns);
  if (!info.ok()) return Convert(info.status());
  *needed = n_tokens / (*info)->geometry.block_tokens;
  if (keys_cap < *needed) {
    *n_keys = *needed;
    return Fail(KVT_INVALID_ARGUMENT, std::string(fn) + ": keys_cap " + std::to_string(keys_cap) +
                                          " is smaller than the " + std::to_string(*needed) +
                                          " full blocks (*n_keys set to the number needed)");
  }
  return KVT_OK;
}

kvt_status_t kvt_hash_tokens(kvt_store* s, uint64_t ns, const int32_t* tokens, size_t n_tokens,
                             kvt_key* keys, size_t keys_cap, size_t* n_keys) {
  return Guard(__func__, [&] {
    size_t needed = 0;
    kvt_status_t st =
        CheckTokenArgs(__func__, s, ns, tokens, n_tokens, keys, keys_cap, n_keys, &needed);
    if (st != KVT_OK) return st;
    std::vector<kvt::Hash128> out;
    kvt::Status hs = s->s->HashTokens(ns, {tokens, n_tokens}, &out);
    if (!hs.ok()) return Convert(hs);
    for (size_t i = 0; i < out.size(); ++i) keys[i] = ToKey(out[i]);
    *n_keys = out.size();
    return KVT_OK;
  });
}

kvt_status_t kvt_lookup(kvt_store* s, uint64_t ns, const kvt_key* keys, size_t n,
                        size_t* prefix_blocks, kvt_tier_t* tiers) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(s != nullptr, "kvt_lookup: store is NULL");
    KVT_REQUIRE(keys != nullptr || n == 0, "kvt_lookup: keys is NULL");
    KVT_REQUIRE(prefix_blocks != nullptr, "kvt_lookup: prefix_blocks is NULL");
    std::vector<kvt::Hash128> k(n);
    for (size_t i = 0; i < n; ++i) k[i] = ToHash(keys[i]);
    std::vector<kvt::Tier> t(tiers != nullptr ? n : 0);
    size_t prefix = 0;
    kvt::Status st = s->s->Lookup(ns, k, &prefix, tiers != nullptr ? t.data() : nullptr);
    if (!st.ok()) return Convert(st);
    *prefix_blocks = prefix;
    for (size_t i = 0; i < t.size(); ++i) tiers[i] = static_cast<kvt_tier_t>(t[i]);
    return KVT_OK;
  });
}

kvt_status_t kvt_match_prefix(kvt_store* s, uint64_t ns, const int32_t* tokens, size_t n_tokens,
                              kvt_key* keys, size_t keys_cap, size_t* n_keys,
                              size_t* prefix_blocks, kvt_tier_t* tiers) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(prefix_blocks != nullptr, "kvt_match_prefix: prefix_blocks is NULL");
    size_t needed = 0;
    kvt_status_t st =
        CheckTokenArgs(__func__, s, ns, tokens, n_tokens, keys, keys_cap, n_keys, &needed);
    if (st != KVT_OK) return st;
    std::vector<kvt::Hash128> k;
    std::vector<kvt::Tier> t;
    size_t prefix = 0;
    kvt::Status ms =
        s->s->MatchPrefix(ns, {tokens, n_tokens}, &k, &prefix, tiers != nullptr ? &t : nullptr);
    if (!ms.ok()) return Convert(ms);
    for (size_t i = 0; i < k.size(); ++i) keys[i] = ToKey(k[i]);
    for (size_t i = 0; i < t.size(); ++i) tiers[i] = static_cast<kvt_tier_t>(t[i]);
    *n_keys = k.size();
    *prefix_blocks = prefix;
    return KVT_OK;
  });
}

kvt_status_t kvt_put(kvt_store* s, uint64_t ns, kvt_key key, kvt_key parent, const int32_t* tokens,
                     const void* data, size_t bytes) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(s != nullptr, "kvt_put: store is NULL");
    KVT_REQUIRE(data != nullptr, "kvt_put: data is NULL");
    KVT_REQUIRE(bytes != 0, "kvt_put: bytes is 0");
    return Convert(s->s->Put(ns, ToHash(key), ToHash(parent), tokens, data, bytes));
  });
}

kvt_status_t kvt_get(kvt_store* s, uint64_t ns, kvt_key key, void* dst, size_t dst_bytes) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(s != nullptr, "kvt_get: store is NULL");
    KVT_REQUIRE(dst != nullptr, "kvt_get: dst is NULL");
    KVT_REQUIRE(dst_bytes != 0, "kvt_get: dst_bytes is 0");
    return Convert(s->s->Get(ns, ToHash(key), dst, dst_bytes));
  });
}

kvt_status_t kvt_remove(kvt_store* s, uint64_t ns, kvt_key key) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(s != nullptr, "kvt_remove: store is NULL");
    return Convert(s->s->Remove(ns, ToHash(key)));
  });
}

kvt_status_t kvt_drop_namespace(kvt_store* s, uint64_t ns) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(s != nullptr, "kvt_drop_namespace: store is NULL");
    return Convert(s->s->DropNamespace(ns));
  });
}

kvt_status_t kvt_prefetch(kvt_store* s, uint64_t ns, const kvt_key* keys, size_t n,
                          kvt_tier_t target, kvt_ticket** out) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(s != nullptr, "kvt_prefetch: store is NULL");
    KVT_REQUIRE(keys != nullptr, "kvt_prefetch: keys is NULL");
    KVT_REQUIRE(n != 0, "kvt_prefetch: n is 0");
    KVT_REQUIRE(out != nullptr, "kvt_prefetch: out is NULL");
    // A C caller may pass any int here; read it as one (loading an out-of-range value as the
    // enum type is undefined behaviour in C++).
    int target_value = 0;
    static_assert(sizeof target_value == sizeof target);
    std::memcpy(&target_value, &target, sizeof target_value);
    KVT_REQUIRE(target_value >= KVT_TIER_HBM && target_value <= KVT_TIER_REMOTE,
                "kvt_prefetch: target " + std::to_string(target_value) + " is not a tier");
    std::vector<kvt::Hash128> k(n);
    for (size_t i = 0; i < n; ++i) k[i] = ToHash(keys[i]);
    auto t = s->s->Prefetch(ns, k, static_cast<kvt::Tier>(target_value));
    if (!t.ok()) return Convert(t.status());
    *out = new kvt_ticket{std::move(t).value()};
    return KVT_OK;
  });
}

kvt_status_t kvt_ticket_wait(kvt_ticket* t, int64_t timeout_us) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(t != nullptr, "kvt_ticket_wait: ticket is NULL");
    return Convert(t->t->Wait(timeout_us));
  });
}

kvt_status_t kvt_ticket_wait_layer(kvt_ticket* t, uint32_t layer, int64_t timeout_us) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(t != nullptr, "kvt_ticket_wait_layer: ticket is NULL");
    return Convert(t->t->WaitLayer(layer, timeout_us));
  });
}

kvt_status_t kvt_ticket_layer_event(kvt_ticket* t, uint32_t layer, int64_t timeout_us,
                                    void** cuda_event) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(t != nullptr, "kvt_ticket_layer_event: ticket is NULL");
    KVT_REQUIRE(cuda_event != nullptr, "kvt_ticket_layer_event: cuda_event is NULL");
    void* ev = nullptr;
    kvt::Status st = t->t->WaitLayerEvent(layer, timeout_us, &ev);
    if (!st.ok()) return Convert(st);
    *cuda_event = ev;
    return KVT_OK;
  });
}

void kvt_ticket_release(kvt_ticket* t) { delete t; }

kvt_status_t kvt_gpu_register(kvt_store* s, uint64_t ns, const kvt_gpu_cache_desc* d,
                              kvt_gpu_cache** out) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(s != nullptr, "kvt_gpu_register: store is NULL");
    KVT_REQUIRE(d != nullptr, "kvt_gpu_register: desc is NULL");
    KVT_REQUIRE(out != nullptr, "kvt_gpu_register: out is NULL");
    KVT_REQUIRE((d->flags & ~KVT_GPU_HOST_MEMORY) == 0,
                "kvt_gpu_register: unknown flags " + std::to_string(d->flags));
    kvt::GpuCache::Desc g;
    g.layers = d->layers;
    g.k_layers = d->k_layers;
    g.v_layers = d->v_layers;
    g.num_blocks = d->num_blocks;
    g.block_stride = d->block_stride;
    g.token_stride = d->token_stride;
    g.head_stride = d->head_stride;
    g.host_memory = (d->flags & KVT_GPU_HOST_MEMORY) != 0;
    auto c = kvt::GpuCache::Register(s->s.get(), ns, g);
    if (!c.ok()) return Convert(c.status());
    *out = new kvt_gpu_cache{std::move(c).value()};
    return KVT_OK;
  });
}

void kvt_gpu_unregister(kvt_gpu_cache* c) { delete c; }

kvt_status_t kvt_gpu_save(kvt_gpu_cache* c, const int32_t* block_ids, const kvt_key* keys,
                          const kvt_key* parents, const int32_t* tokens, size_t n, void* stream) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(c != nullptr, "kvt_gpu_save: cache is NULL");
    KVT_REQUIRE(block_ids != nullptr, "kvt_gpu_save: block_ids is NULL");
    KVT_REQUIRE(keys != nullptr, "kvt_gpu_save: keys is NULL");
    KVT_REQUIRE(n != 0, "kvt_gpu_save: n is 0");
    std::vector<kvt::Hash128> k(n), p(parents != nullptr ? n : 0);
    for (size_t i = 0; i < n; ++i) k[i] = ToHash(keys[i]);
    for (size_t i = 0; i < p.size(); ++i) p[i] = ToHash(parents[i]);
    return Convert(c->c->Save({block_ids, n}, k, parents != nullptr ? p.data() : nullptr, tokens,
                              stream));
  });
}

kvt_status_t kvt_gpu_load(kvt_gpu_cache* c, const kvt_key* keys, const int32_t* block_ids,
                          size_t n, void* stream, void* const* layer_events) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(c != nullptr, "kvt_gpu_load: cache is NULL");
    KVT_REQUIRE(keys != nullptr, "kvt_gpu_load: keys is NULL");
    KVT_REQUIRE(block_ids != nullptr, "kvt_gpu_load: block_ids is NULL");
    KVT_REQUIRE(n != 0, "kvt_gpu_load: n is 0");
    std::vector<kvt::Hash128> k(n);
    for (size_t i = 0; i < n; ++i) k[i] = ToHash(keys[i]);
    return Convert(c->c->Load(k, {block_ids, n}, stream, layer_events));
  });
}

// --- batches, caller memory, caller keys, events --------------------------------------------

// Engine entries from the caller's kvt_io array (the outputs are written back by FromEntries).
static void ToEntries(const kvt_io* v, size_t n, std::vector<kvt::BatchEntry>* out) {
  out->resize(n);
  for (size_t i = 0; i < n; ++i) {
    kvt::BatchEntry& e = (*out)[i];
    e.key = ToHash(v[i].key);
    e.parent = ToHash(v[i].parent);
    e.tokens = v[i].tokens;
    e.buf = v[i].buf;
    e.bytes = v[i].bytes;
  }
}

static kvt_status_t EntryStatus(const kvt::Status& s) {
  return static_cast<kvt_status_t>(s.code());
}

static void FromEntries(std::span<const kvt::BatchEntry> done, kvt_io* v) {
  for (size_t i = 0; i < done.size(); ++i) {
    v[i].status = EntryStatus(done[i].status);
    v[i].tier = static_cast<kvt_tier_t>(done[i].tier);
  }
}

static kvt_status_t CheckBatchArgs(const char* fn, kvt_store* s, kvt_io* v, size_t n) {
  KVT_REQUIRE(s != nullptr, std::string(fn) + ": store is NULL");
  KVT_REQUIRE(v != nullptr || n == 0, std::string(fn) + ": v is NULL");
  return KVT_OK;
}

static kvt_status_t RunBatch(const char* fn, bool put, kvt_store* s, uint64_t ns, kvt_io* v,
                             size_t n) {
  kvt_status_t st = CheckBatchArgs(fn, s, v, n);
  if (st != KVT_OK) return st;
  std::vector<kvt::BatchEntry> e;
  ToEntries(v, n, &e);
  kvt::Status bs = put ? s->s->PutBatch(ns, e) : s->s->GetBatch(ns, e);
  if (!bs.ok()) return Convert(bs);
  FromEntries(e, v);
  return KVT_OK;
}

static kvt_status_t StartBatch(const char* fn, bool put, kvt_store* s, uint64_t ns, kvt_io* v,
                               size_t n, kvt_ticket** out) {
  kvt_status_t st = CheckBatchArgs(fn, s, v, n);
  if (st != KVT_OK) return st;
  KVT_REQUIRE(out != nullptr, std::string(fn) + ": out is NULL");
  std::vector<kvt::BatchEntry> e;
  ToEntries(v, n, &e);
  auto publish = [v](size_t first, std::span<const kvt::BatchEntry> done) {
    FromEntries(done, v + first);
  };
  auto t = s->s->StartBatch(put, ns, std::move(e), publish);
  if (!t.ok()) return Convert(t.status());
  *out = new kvt_ticket{std::move(t).value()};
  return KVT_OK;
}

kvt_status_t kvt_get_batch(kvt_store* s, uint64_t ns, kvt_io* v, size_t n) {
  return Guard(__func__, [&] { return RunBatch(__func__, false, s, ns, v, n); });
}

kvt_status_t kvt_put_batch(kvt_store* s, uint64_t ns, kvt_io* v, size_t n) {
  return Guard(__func__, [&] { return RunBatch(__func__, true, s, ns, v, n); });
}

kvt_status_t kvt_get_batch_async(kvt_store* s, uint64_t ns, kvt_io* v, size_t n,
                                 kvt_ticket** out) {
  return Guard(__func__, [&] { return StartBatch(__func__, false, s, ns, v, n, out); });
}

kvt_status_t kvt_put_batch_async(kvt_store* s, uint64_t ns, kvt_io* v, size_t n,
                                 kvt_ticket** out) {
  return Guard(__func__, [&] { return StartBatch(__func__, true, s, ns, v, n, out); });
}

kvt_status_t kvt_register_memory(kvt_store* s, void* addr, size_t bytes) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(s != nullptr, "kvt_register_memory: store is NULL");
    KVT_REQUIRE(addr != nullptr, "kvt_register_memory: addr is NULL");
    KVT_REQUIRE(bytes != 0, "kvt_register_memory: bytes is 0");
    return Convert(s->s->RegisterMemory(addr, bytes));
  });
}

kvt_status_t kvt_unregister_memory(kvt_store* s, void* addr) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(s != nullptr, "kvt_unregister_memory: store is NULL");
    KVT_REQUIRE(addr != nullptr, "kvt_unregister_memory: addr is NULL");
    return Convert(s->s->UnregisterMemory(addr));
  });
}

kvt_status_t kvt_key_from_bytes(kvt_store* s, uint64_t ns, const void* id, size_t len,
                                kvt_key* key) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(s != nullptr, "kvt_key_from_bytes: store is NULL");
    KVT_REQUIRE(id != nullptr, "kvt_key_from_bytes: id is NULL");
    KVT_REQUIRE(key != nullptr, "kvt_key_from_bytes: key is NULL");
    KVT_REQUIRE(len >= 1 && len <= 4096,
                "kvt_key_from_bytes: len " + std::to_string(len) + " is not 1..4096");
    auto k = s->s->KeyFromBytes(ns, id, len);
    if (!k.ok()) return Convert(k.status());
    *key = ToKey(*k);
    return KVT_OK;
  });
}

kvt_status_t kvt_events_poll(kvt_store* s, kvt_event* out, size_t cap, size_t* n,
                             uint64_t* lost) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(s != nullptr, "kvt_events_poll: store is NULL");
    KVT_REQUIRE(n != nullptr, "kvt_events_poll: n is NULL");
    KVT_REQUIRE(out != nullptr || cap == 0, "kvt_events_poll: out is NULL");
    std::vector<kvt::BlockEvent> ev(std::min<size_t>(cap, size_t{1} << 22));  // the most kept
    uint64_t dropped = 0;
    auto got = s->s->PollEvents(ev.data(), ev.size(), &dropped);
    if (!got.ok()) return Convert(got.status());
    for (size_t i = 0; i < *got; ++i) {
      out[i].kind = ev[i].kind == kvt::EventKind::kStored ? KVT_EVENT_STORED : KVT_EVENT_REMOVED;
      out[i].ns = ev[i].ns;
      out[i].key = ToKey(ev[i].key);
    }
    *n = *got;
    if (lost != nullptr) *lost = dropped;
    return KVT_OK;
  });
}

kvt_status_t kvt_stats_json(kvt_store* s, char** json) {
  return Guard(__func__, [&] {
    KVT_REQUIRE(s != nullptr, "kvt_stats_json: store is NULL");
    KVT_REQUIRE(json != nullptr, "kvt_stats_json: json is NULL");
    std::string j = s->s->StatsJson();
    char* p = static_cast<char*>(std::malloc(j.size() + 1));
    if (p == nullptr) return Fail(KVT_INTERNAL, "kvt_stats_json: out of memory");
    std::memcpy(p, j.c_str(), j.size() + 1);
    *json = p;
    return KVT_OK;
  });
}

}  // extern "C"
