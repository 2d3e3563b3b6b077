/*
 * kvtier: a tiered KV-cache offload store for LLM inference. The C API.
 *
 * Conventions (apply to every function below unless its comment says otherwise):
 *  - Every function returns kvt_status_t; results come back through out-parameters. KVT_NOT_FOUND
 *    is an ordinary answer, not a failure.
 *  - On any status other than KVT_OK, kvt_last_error() returns a message naming what was wrong
 *    (which argument, which file, which errno). Bad arguments return KVT_INVALID_ARGUMENT and change
 *    nothing: not the store's contents, not its counters, not the out-parameters.
 *  - No C++ exception and no abort crosses this boundary.
 *  - Memory the library allocates for the caller is freed with kvt_free.
 *  - All functions are thread-safe on one store, except that kvt_close must not race any other call
 *    on the same store, and an options object must not be mutated by two threads at once.
 *  - "Blocks" means the call may wait for I/O or for a lock held by another thread for a short time;
 *    none of them waits for another caller's long operation unless stated.
 *
 * Data model: a namespace (kvt_namespace_open) fixes everything that makes KV bytes incompatible or
 * private. A block key is a 128-bit chained hash of a token prefix within that namespace
 * (kvt_hash_tokens). A block's payload is layer-major: for each layer, K then V, each
 * [block_tokens][kv_heads][head_dim] elements of kv_dtype (MLA: one latent tensor
 * [block_tokens][head_dim] per layer); kvt_block_bytes gives its size.
 */
#ifndef KVTIER_KVTIER_H_
#define KVTIER_KVTIER_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KVT_API __attribute__((visibility("default")))
#else
#define KVT_API
#endif

typedef struct kvt_store kvt_store;
typedef struct kvt_options kvt_options;
typedef struct kvt_ticket kvt_ticket; /* an async prefetch or batch in flight */
typedef struct {
  uint64_t lo, hi;
} kvt_key; /* 128-bit chained block key */

typedef enum {
  KVT_OK = 0,
  KVT_NOT_FOUND,
  KVT_INVALID_ARGUMENT,
  KVT_IO_ERROR,
  KVT_CORRUPTION,
  KVT_NO_SPACE,
  KVT_BUSY,
  KVT_TIMEOUT,
  KVT_UNAVAILABLE,
  KVT_PERMISSION_DENIED,
  KVT_INTERNAL
} kvt_status_t;

typedef enum {
  KVT_TIER_NONE = -1,
  KVT_TIER_HBM = 0,
  KVT_TIER_HOST = 1,
  KVT_TIER_NVME = 2,
  KVT_TIER_REMOTE = 3
} kvt_tier_t;

/* kvt_namespace_desc.flags */
#define KVT_NS_MLA 0x1u /* one latent tensor per layer instead of K and V */
/* The namespace's blocks may travel between nodes quantized to fp8-e4m3 (remote_compression
 * "fp8"), and the receiving node keeps them as decoded: lossy, within fp8's error (relative 2^-4
 * per value, one scale per block, layer, K/V and head). Only with kv_dtype fp16 or bf16. A flag of
 * the namespace, so exact and lossy copies of a prefix never share blocks. */
#define KVT_NS_LOSSY_OK 0x2u

typedef struct {
  const char* model;       /* model name and weights revision; required, non-empty */
  const char* kv_dtype;    /* "fp16" | "bf16" | "fp8_e4m3" | "int8" */
  const char* tenant_salt; /* may be NULL or "": shared cache */
  const char* adapter;     /* LoRA adapter id, may be NULL */
  uint32_t layers, kv_heads, head_dim, block_tokens; /* all > 0 (kv_heads ignored for MLA) */
  uint32_t tp_rank; /* tensor-parallel rank whose shard these blocks hold */
  uint32_t flags;   /* KVT_NS_MLA | KVT_NS_LOSSY_OK */
} kvt_namespace_desc;

/* ---- library -------------------------------------------------------------------------------- */

/* The library version, "MAJOR.MINOR.PATCH". Static storage; never NULL. */
KVT_API const char* kvt_version(void);

/* The calling thread's message for its last non-OK status; "" before any error. Never NULL.
 * Valid until this thread's next kvtier call. */
KVT_API const char* kvt_last_error(void);

/* A static name for a status ("KVT_NOT_FOUND"), "KVT_UNKNOWN" for a value outside the enum. */
KVT_API const char* kvt_status_name(kvt_status_t s);

/* Frees memory the library allocated for the caller (kvt_stats_json). NULL is a no-op. */
KVT_API void kvt_free(void* p);

/* ---- options -------------------------------------------------------------------------------- */

/* A new options object holding the defaults; NULL only when out of memory. Free with
 * kvt_options_destroy (NULL is a no-op). */
KVT_API kvt_options* kvt_options_create(void);
KVT_API void kvt_options_destroy(kvt_options* o);

/* Sets one option by name. Sizes are written "4096", "64KiB", "16MiB", "8GiB" (K, KiB, M, MiB, G,
 * GiB, T, TiB: powers of 1024; KB, MB, GB, TB: powers of 1000). Names, values (defaults in brackets) and each size rule (checked here, or at
 * kvt_open for rules between two options):
 *   dir            directory for the NVMe tier and the lock file ["./kvtier-data"]
 *   host_bytes     host tier budget, a size such as "8GiB" ["1GiB"]. At least 4 KiB and at
 *                  least one slab (host_bytes >= host_slab_bytes, checked at open); the budget is
 *                  used in whole slabs (rounded down). A namespace whose block (rounded up to
 *                  4 KiB) is larger than the usable budget is refused by kvt_namespace_open.
 *   hbm_bytes      HBM tier budget ["0": no HBM tier]. When > 0, at least 256 bytes; it holds
 *                  whole slots of the first stored block's size rounded up to 256 bytes.
 *   nvme_bytes     NVMe tier budget ["0": no NVMe tier]. When > 0, at least two segments
 *                  (>= 2 * nvme_segment_bytes, checked at open) and at most a million; used in
 *                  whole segments (rounded down).
 *   host_policy    "lru" | "s3fifo" | "chain_lru" ["lru"]
 *   write_policy   "write_through" | "write_back" ["write_back"]
 *   hash_secret    hex string (even length, up to 128 bytes) for keyed block hashing [""]
 *   remote         "host:port,host:port" [""]: kvtierd nodes forming the remote tier; or
 *                  "etcd://HOST:PORT/PREFIX": the nodes registered under PREFIX in etcd (kvtierd
 *                  --etcd), followed as they join and leave. kvt_open then fails with
 *                  KVT_UNAVAILABLE (the message names etcd) when etcd does not answer.
 *   auth_secret    shared secret for kvtierd, or the secret of the credential auth_id [""]
 *   tls_ca, tls_cert, tls_key  PEM files: with tls_ca set, kvtierd connections use TLS 1.3, the
 *                  node's certificate must chain to tls_ca; tls_cert/tls_key: ours (mutual TLS) [""]
 *   auth_id        a kvtierd tenant credential id (kvtierd --tenants) [""]: the node binds the
 *                  connection to it and answers KVT_PERMISSION_DENIED outside its tenants/rights
 *   remote_write   "write_through" | "off" ["write_through"]: with remote set, a put is also sent
 *                  to the block's owning node (and a namespace drop to every node)
 *   remote_connections  connections per node one fetch uses in parallel, 1..64 ["1"]
 *   remote_batch_blocks keys per GET request, batches scheduled across those connections, 0..4096
 *                  (0: up to the node's limit, one request) ["0"]
 *   remote_pipeline_depth  GET requests in flight per connection, 1..4096 ["4"]
 *   remote_socket_buffer   SO_SNDBUF/SO_RCVBUF per connection, bytes (0: kernel autotuning) ["0"];
 *                  for a rate-limited link, its bandwidth-delay product / remote_connections
 *   remote_compression "none" | "zstd" | "fp8" ["none"]: block payloads compressed on the wire to
 *                  and from nodes whose kvtierd --compression accepts it (negotiated per
 *                  connection; otherwise plain). zstd: lossless (16-bit byte shuffle + zstd).
 *                  fp8: blocks of KVT_NS_LOSSY_OK namespaces travel as fp8-e4m3 (about half the
 *                  bytes, lossy: kept as decoded), the others as zstd. Counters: remote.codec
 *   io_depth       io_uring queue depth, 1..4096 ["64"]; also the entries an async batch moves
 *                  per step (at least 8), and the blocks a flush or a demotion writes per batch
 *   host_slab_bytes  size of one host-pool slab, a positive multiple of 4 KiB at most host_bytes,
 *                  or "auto" ["auto": 16MiB, or host_bytes/4 rounded down to 4 KiB when that is
 *                  smaller, so that 1, 2 or 8 MiB host budgets open]. A slab serves slots of one
 *                  block size (rounded up to 4 KiB); a block larger than a slab takes a run of
 *                  contiguous slabs.
 *   host_mlock     "true" | "false": lock the host pool in RAM where allowed ["true"]
 *   verify_host_reads  "true" | "false": verify checksums on host-tier reads too ["false"]
 *   nvme_segment_bytes NVMe segment size, the unit of reclamation: a multiple of 4 KiB, 1 MiB to
 *                  4 GiB ["64MiB"]
 *   nvme_codec     "none" | "zstd" (16-bit byte shuffle + zstd for cold blocks) ["none"]
 *   nvme_admission "all" | "seen_twice" | "budget:SIZE" (bytes per day) | "seen_twice+budget:SIZE"
 *                  ["all"]: which blocks evicted from host are written to NVMe
 *   nvme_reinsertion "true" | "false": keep blocks read since written when a segment is reclaimed
 *                  ["false"]
 *   event_queue    block events kept for kvt_events_poll, 0..4194304 ["0": events off]; when
 *                  full the oldest event is dropped and counted as lost
 * The NVMe tier lives in `dir`/nvme; write_back writes a block to NVMe when host evicts it (and at
 * flush), write_through writes it during kvt_put. hbm_bytes > 0 opens the HBM tier: a pool of
 * block slots in GPU memory (cudaMalloc'd once at open) when kvtier was built with CUDA and a
 * device is visible; otherwise the same tier emulated in host memory (hbm_bytes of RAM, copies by
 * memcpy: same behaviour, host speed; kvt_stats_json says which under tiers.hbm.memory). Its slot
 * size is fixed by the first block placed there.
 * With `remote`, each block has one owning node (rendezvous hashing of its key); a lookup, match or
 * get that misses locally asks the owner (a remote block reports KVT_TIER_REMOTE and is fetched
 * into the host tier on get), and kvt_open fails with KVT_PERMISSION_DENIED when a reachable node
 * rejects auth_secret (a node that cannot be reached is a miss until it comes up). Network failures
 * are misses, never wrong bytes: every payload is checksum-verified. See docs/PROTOCOL.md.
 * Returns KVT_INVALID_ARGUMENT for NULL arguments, an unknown name or a malformed value, leaving
 * the options unchanged. Does not block. */
KVT_API kvt_status_t kvt_options_set(kvt_options* o, const char* name, const char* value);

/* Reads "name = value" lines (blank lines and lines starting with '#' ignored) and sets each as
 * kvt_options_set would. All or nothing: on any error (unreadable file, a bad line, reported with
 * its line number) the options are left unchanged. Blocks on file I/O. */
KVT_API kvt_status_t kvt_options_load_file(kvt_options* o, const char* path);

/* ---- store ---------------------------------------------------------------------------------- */

/* Opens a store. Creates `dir` (and parents) when missing. The options are copied; the caller may
 * destroy them afterwards. KVT_INVALID_ARGUMENT: NULL arguments or inconsistent options;
 * KVT_BUSY: the directory is locked by another open store; KVT_CORRUPTION: the directory holds
 * another on-disk format version; KVT_IO_ERROR / KVT_PERMISSION_DENIED: the directory cannot be
 * used. Blocks (allocates and may lock the host pool). */
KVT_API kvt_status_t kvt_open(const kvt_options* o, kvt_store** out);

/* Flushes and closes. NULL is a no-op returning KVT_OK. The store is freed even when the flush
 * fails (the status says so). Must not race other calls on the same store; tickets must have
 * been released and registered memory unregistered first. */
KVT_API kvt_status_t kvt_close(kvt_store* s);

/* Makes every block acknowledged so far (and admitted by nvme_admission) durable on NVMe: with
 * write_back, blocks only in host RAM are written down first. With only volatile tiers configured
 * it returns KVT_OK at once. The first write or sync failure is returned. With write_back, a block
 * evicted since the last flush whose NVMe write failed is lost although its put succeeded: this
 * flush then returns that error (KVT_IO_ERROR or KVT_NO_SPACE), once. Blocks. */
KVT_API kvt_status_t kvt_flush(kvt_store* s);

/* ---- namespaces and keys -------------------------------------------------------------------- */

/* Registers (or finds) a namespace and returns its 64-bit id. The same description always gives
 * the same id, in every process. KVT_INVALID_ARGUMENT: NULL, missing model, unknown dtype, zero
 * geometry, or a block larger than the store can hold. Does not block. */
KVT_API kvt_status_t kvt_namespace_open(kvt_store* s, const kvt_namespace_desc* d, uint64_t* ns);

/* Payload size of one block of namespace ns. KVT_INVALID_ARGUMENT: ns was never opened on this
 * store (the same answer every call taking a namespace id gives for an unknown one). */
KVT_API kvt_status_t kvt_block_bytes(kvt_store* s, uint64_t ns, size_t* bytes);

/* One key per FULL block of tokens; a trailing partial block gets no key. keys may be NULL only
 * when keys_cap is 0. keys_cap smaller than the number of full blocks: KVT_INVALID_ARGUMENT with
 * *n_keys set to the number needed. n_tokens == 0 gives *n_keys = 0. Pure computation. */
KVT_API kvt_status_t kvt_hash_tokens(kvt_store* s, uint64_t ns, const int32_t* tokens,
                                     size_t n_tokens, kvt_key* keys, size_t keys_cap,
                                     size_t* n_keys);

/* Longest cached prefix: *prefix_blocks = number of leading keys that are all cached (any tier);
 * tiers (optional, n entries) receives where each key is, KVT_TIER_NONE for a miss. The chain is
 * verified: block i counts only if its stored parent is keys[i-1] (the root for i = 0); a key
 * whose stored parent differs is reported KVT_TIER_NONE and counted as a collision. A lookup is
 * not a use: it promotes nothing, reads no payload and changes no eviction order (routers probe
 * and engines look up more than they load; only get, put and prefetch count as uses). */
KVT_API kvt_status_t kvt_lookup(kvt_store* s, uint64_t ns, const kvt_key* keys, size_t n,
                                size_t* prefix_blocks, kvt_tier_t* tiers);

/* Hashes the tokens (as kvt_hash_tokens), looks the keys up, and verifies each hit's stored token
 * ids against the caller's, so a hash collision is a miss. keys receives the keys of all full
 * blocks (*n_keys); *prefix_blocks counts the verified cached prefix; tiers (optional, keys_cap
 * entries) as in kvt_lookup. Like kvt_lookup, not a use: no eviction order changes. */
KVT_API kvt_status_t kvt_match_prefix(kvt_store* s, uint64_t ns, const int32_t* tokens,
                                      size_t n_tokens, kvt_key* keys, size_t keys_cap,
                                      size_t* n_keys, size_t* prefix_blocks, kvt_tier_t* tiers);

/* The root key of namespace ns: the parent to pass for block 0. (The C_API contract also accepts
 * {0,0} for block 0's parent; both mean "no parent".) */
KVT_API kvt_status_t kvt_namespace_root(kvt_store* s, uint64_t ns, kvt_key* root);

/* ---- host-buffer data path ------------------------------------------------------------------ */

/* Copies `bytes` (must equal kvt_block_bytes) from data into the host tier under key. parent is the
 * previous block's key ({0,0} or the root for block 0); tokens are the block's block_tokens token
 * ids, or NULL (then hits on this block are unverified). Putting a key that is already stored with
 * the same parent and tokens refreshes it and returns KVT_OK. KVT_BUSY: the tier is full and every
 * block in it is pinned by reads in flight (nothing was stored). Blocks on a memcpy. */
KVT_API kvt_status_t kvt_put(kvt_store* s, uint64_t ns, kvt_key key, kvt_key parent,
                             const int32_t* tokens, const void* data, size_t bytes);

/* Copies a stored block into dst (dst_bytes must equal kvt_block_bytes). A block found on NVMe is
 * verified, copied to dst and promoted to the host tier; one only in the HBM tier is copied out. KVT_NOT_FOUND: not stored, or its checksum
 * failed (the entry is then dropped and counted). KVT_IO_ERROR: the device failed the read (the
 * block is kept). Blocks on a memcpy, or on NVMe I/O. */
KVT_API kvt_status_t kvt_get(kvt_store* s, uint64_t ns, kvt_key key, void* dst, size_t dst_bytes);

/* Removes one block from every tier. KVT_NOT_FOUND when no tier held it. A block being read
 * by another thread stays readable by that thread until its read ends. */
KVT_API kvt_status_t kvt_remove(kvt_store* s, uint64_t ns, kvt_key key);

/* Empties the namespace in every tier; its id stays valid and reads as empty. */
KVT_API kvt_status_t kvt_drop_namespace(kvt_store* s, uint64_t ns);

/* ---- async prefetch ------------------------------------------------------------------------- */

/* Starts bringing keys into the target tier (KVT_TIER_HBM or KVT_TIER_HOST) and returns a ticket
 * at once; a background worker moves the blocks NVMe -> host (io_uring, verified) -> HBM (copy
 * stream), the last hop layer by layer, and completes the ticket one layer at a time. The keys
 * array is copied. Keys that are not stored anywhere make the ticket complete with KVT_NOT_FOUND;
 * a tier whose blocks are all pinned makes it complete with KVT_BUSY. While the ticket lives, its
 * blocks are pinned in the target tier. Release every ticket with kvt_ticket_release (which
 * cancels the rest of its transfers). KVT_TIER_HBM on a store without an HBM tier:
 * KVT_UNAVAILABLE; other targets: KVT_INVALID_ARGUMENT. Does not block on I/O. */
KVT_API kvt_status_t kvt_prefetch(kvt_store* s, uint64_t ns, const kvt_key* keys, size_t n,
                                  kvt_tier_t target, kvt_ticket** out);

/* Waits until every layer of every block is resident (timeout_us < 0: forever; 0: poll).
 * KVT_OK, KVT_TIMEOUT, or the prefetch's failure (KVT_NOT_FOUND when a key was missing). */
KVT_API kvt_status_t kvt_ticket_wait(kvt_ticket* t, int64_t timeout_us);

/* As kvt_ticket_wait, for one layer (0 <= layer < the namespace's layers). */
KVT_API kvt_status_t kvt_ticket_wait_layer(kvt_ticket* t, uint32_t layer, int64_t timeout_us);

/* For engines on a GPU: the device-side wait for one layer. Returns as soon as layer `layer`'s
 * copies into HBM are enqueued, with *cuda_event set to a cudaEvent_t (owned by the ticket, valid
 * until kvt_ticket_release) that completes when that layer of every block is resident; pass it to
 * cudaStreamWaitEvent so the compute stream waits instead of the host thread. *cuda_event = NULL
 * when nothing is left to wait for on the device (the layer is resident: emulated HBM, host target,
 * blocks already in HBM). Timeouts and failures as kvt_ticket_wait_layer. */
KVT_API kvt_status_t kvt_ticket_layer_event(kvt_ticket* t, uint32_t layer, int64_t timeout_us,
                                            void** cuda_event);

/* Releases the ticket and the pins it holds. NULL is a no-op. A batch ticket released before it
 * completed cancels the entries not yet started (see kvt_get_batch_async); blocks until the ones
 * in flight are done. */
KVT_API void kvt_ticket_release(kvt_ticket* t);

/* ---- batches, async batches, caller memory, caller keys, events ------------------------------ */

/* One block of a batch. The caller owns the array and every buffer it names. */
typedef struct {
  kvt_key key;
  kvt_key parent;        /* put: previous block's key, {0,0} or the root for a chain's first block */
  const int32_t* tokens; /* put: the block's block_tokens token ids, or NULL (hits unverified) */
  void* buf;             /* get: destination; put: source (only read) */
  size_t bytes;          /* must equal kvt_block_bytes */
  kvt_status_t status;   /* out: this block's result (KVT_OK, KVT_NOT_FOUND, KVT_BUSY, ...) */
  kvt_tier_t tier;       /* out, get: the tier it was served from; KVT_TIER_NONE on a miss */
} kvt_io;

/* Gets (puts) every entry of v. The whole batch is checked first: KVT_INVALID_ARGUMENT (nothing
 * done, no entry touched, message naming the entry) for a NULL store, NULL v with n > 0, an unknown
 * ns, an entry with a NULL buf or a size other than kvt_block_bytes. Otherwise returns KVT_OK once
 * every entry is done, each entry's status saying how that block went: for a get KVT_OK (tier
 * = where it was served from: HBM, host, NVMe or remote), KVT_NOT_FOUND (a miss, or a checksum
 * failure: the entry is then dropped) or KVT_IO_ERROR; for a put KVT_OK (tier = KVT_TIER_HOST),
 * KVT_BUSY (host tier full and pinned), or the write-through's failure (KVT_NO_SPACE,
 * KVT_IO_ERROR: the block is in the host tier but not on NVMe). n == 0 is a valid no-op.
 * Gets serve host and HBM hits by memcpy and then read all the NVMe misses together (up to
 * io_depth reads in flight); a block read from NVMe lands straight in buf when buf is 4 KiB-aligned
 * (with registered buffers when it lies in kvt_register_memory memory; an unaligned buf costs a
 * copy) and is promoted to the host tier. Puts store into the host
 * tier and, with write_through, write the batch's blocks to NVMe in one submission. Gets and puts
 * are uses for eviction, as kvt_get and kvt_put are. Blocks. */
KVT_API kvt_status_t kvt_get_batch(kvt_store* s, uint64_t ns, kvt_io* v, size_t n);
KVT_API kvt_status_t kvt_put_batch(kvt_store* s, uint64_t ns, kvt_io* v, size_t n);

/* As kvt_get_batch / kvt_put_batch (same checks, same per-entry results), returning at once with
 * a ticket in *out (out must not be NULL); a background worker moves the entries, io_depth of them
 * at a time. v and every buffer must stay valid until the ticket completes or is released; read
 * the entries' statuses only after that. kvt_ticket_wait returns KVT_OK once every entry is done
 * (statuses filled), KVT_TIMEOUT before (kvt_ticket_wait_layer with layer 0 is the same wait).
 * kvt_ticket_release before completion cancels the entries not yet started (their status reads
 * KVT_UNAVAILABLE, tier KVT_TIER_NONE) and waits for the ones in flight, so no buffer is touched
 * after it returns. Every ticket must be released before kvt_close. Does not block on I/O. */
KVT_API kvt_status_t kvt_get_batch_async(kvt_store* s, uint64_t ns, kvt_io* v, size_t n,
                                         kvt_ticket** out);
KVT_API kvt_status_t kvt_put_batch_async(kvt_store* s, uint64_t ns, kvt_io* v, size_t n,
                                         kvt_ticket** out);

/* Registers caller memory (an engine's host KV pool) once: pinned with mlock (best effort: a small
 * RLIMIT_MEMLOCK leaves it pageable, and kvt_stats_json says so under engine.registered_mlocked),
 * registered with the NVMe tier's io_uring rings, and with cudaHostRegister when kvtier was built
 * with CUDA and a GPU is visible. Gets into the range then land from NVMe with no bounce copy (see
 * kvt_get_batch). KVT_INVALID_ARGUMENT: NULL store or addr, bytes 0, or a range overlapping one
 * already registered. Unregistered memory works too, through the store's own buffers. Blocks
 * briefly (mlock, ring registration). */
KVT_API kvt_status_t kvt_register_memory(kvt_store* s, void* addr, size_t bytes);

/* Unregisters the range that starts at addr (as passed to kvt_register_memory), waiting for any
 * read into it to finish; the caller may free the memory once it returns. Unregister every range
 * before kvt_close. KVT_INVALID_ARGUMENT: addr does not start a registered range. Blocks. */
KVT_API kvt_status_t kvt_unregister_memory(kvt_store* s, void* addr);

/* Maps a caller-supplied block id (an engine's own sha256 chain hash, a file name, any bytes; len
 * 1..4096) into namespace ns's key space with the store's keyed hash: the same bytes give the same
 * key in every process with the same hash_secret; different namespaces never share keys, and these
 * keys never equal kvt_hash_tokens keys. Store such blocks with parent {0,0} and tokens NULL.
 * KVT_INVALID_ARGUMENT: NULL store, id or key, len 0 or over 4096, unknown ns. Pure computation. */
KVT_API kvt_status_t kvt_key_from_bytes(kvt_store* s, uint64_t ns, const void* id, size_t len,
                                        kvt_key* key);

/* Block events for cache-aware routers. */
typedef enum { KVT_EVENT_STORED = 1, KVT_EVENT_REMOVED = 2 } kvt_event_kind;
typedef struct {
  kvt_event_kind kind;
  uint64_t ns;
  kvt_key key;
} kvt_event;

/* Copies up to cap events, oldest first, into out and removes them from the queue; *n = how many.
 * Events are off unless the option "event_queue" = N > 0 (N events kept). STORED: a put made the
 * block readable (it was in no tier before; re-putting a stored block is no event). REMOVED: no
 * tier of this store holds it any more (eviction from the last tier holding it, kvt_remove,
 * kvt_drop_namespace: one event per block, a checksum failure). lost (may be NULL) receives the
 * number of events dropped because the queue was full since the previous poll: a router that
 * sees lost > 0 should resynchronize. KVT_UNAVAILABLE when events are off; KVT_INVALID_ARGUMENT for
 * NULL store or n, or NULL out with cap > 0. Never blocks. */
KVT_API kvt_status_t kvt_events_poll(kvt_store* s, kvt_event* out, size_t cap, size_t* n,
                                     uint64_t* lost);

/* ---- GPU paths: an engine's own paged KV cache ---------------------------------------------- */

typedef struct kvt_gpu_cache kvt_gpu_cache; /* an engine KV cache registered with a store */

/* kvt_gpu_cache_desc.flags. KVT_GPU_HOST_MEMORY: the cache is in host memory; the same paths
 * run on the CPU reference kernels and streams and events are ignored (tests, CPU-only engines). */
#define KVT_GPU_HOST_MEMORY 0x1u

typedef struct {
  uint32_t layers;        /* must equal the namespace's layers */
  void* const* k_layers;  /* [layers] address of block 0's K (MLA: latent) in each layer */
  void* const* v_layers;  /* [layers] address of block 0's V in each layer; NULL for MLA */
  int64_t num_blocks;     /* blocks per layer: valid engine block ids are [0, num_blocks) */
  /* Element strides (of kv_dtype) between blocks, tokens of a block, heads of a token. All 0:
   * NHD pages, each layer [num_blocks][block_tokens][kv_heads][head_dim] (vLLM flash layout).
   * HND pages: token_stride = head_dim, head_stride = block_tokens * head_dim. */
  int64_t block_stride, token_stride, head_stride;
  uint32_t flags; /* KVT_GPU_HOST_MEMORY */
} kvt_gpu_cache_desc;

/* Registers an engine's paged KV cache for namespace ns; the pointer arrays are copied, the memory
 * they point to must stay allocated until kvt_gpu_unregister. Unregister every cache before
 * kvt_close. KVT_UNAVAILABLE: a device cache and no usable GPU (kvtier built without CUDA, or no
 * device visible); the message says which. KVT_INVALID_ARGUMENT: NULL arguments, unknown ns,
 * layers differing from the namespace, a NULL layer pointer, num_blocks <= 0, overlapping strides.
 * Blocks briefly (copies the pointer arrays to the device). */
KVT_API kvt_status_t kvt_gpu_register(kvt_store* s, uint64_t ns, const kvt_gpu_cache_desc* d,
                                      kvt_gpu_cache** out);

/* Waits for loads still running on their streams, then frees the registration. NULL: no-op.
 * kvt_gpu_save and kvt_gpu_load may be called on one cache from several threads at once;
 * kvt_gpu_unregister must not race them. */
KVT_API void kvt_gpu_unregister(kvt_gpu_cache* c);

/* Saves engine blocks: block_ids[i] is gathered into a payload (gather kernel on `stream`, a
 * cudaStream_t; NULL is the default stream) and stored under keys[i] as kvt_put would, with parent
 * parents[i] (parents NULL: keys[i-1], and the namespace root for i = 0) and the block's tokens
 * tokens[i * block_tokens ...] (tokens may be NULL). Every id is checked first
 * (KVT_INVALID_ARGUMENT, nothing stored); the first put failure is returned (blocks before it are
 * stored). Blocks: returns when the engine may overwrite the blocks. */
KVT_API kvt_status_t kvt_gpu_save(kvt_gpu_cache* c, const int32_t* block_ids, const kvt_key* keys,
                                  const kvt_key* parents, const int32_t* tokens, size_t n,
                                  void* stream);

/* Loads stored blocks into engine blocks: keys[i] into block_ids[i]. Enqueues on `stream`, layer
 * by layer, the copies (blocks in the HBM tier: device to device from the pool; others: from the
 * pinned host tier) and, after layer l, records layer_events[l] (a cudaEvent_t the caller created;
 * layer_events or any entry may be NULL), so compute for layer l can wait for that layer alone.
 * Returns once enqueued; the blocks stay pinned until the stream has run the copies. A block only
 * on NVMe is read into the host tier first (blocks on I/O). KVT_NOT_FOUND: a key is not stored
 * (nothing enqueued). With KVT_GPU_HOST_MEMORY the copies are done when it returns. */
KVT_API kvt_status_t kvt_gpu_load(kvt_gpu_cache* c, const kvt_key* keys, const int32_t* block_ids,
                                  size_t n, void* stream, void* const* layer_events);

/* ---- observability -------------------------------------------------------------------------- */

/* Stats as a JSON object: per tier hits, misses, inserts, evictions, bytes in/out, collisions,
 * checksum failures, rejections, capacity and use. The caller frees *json with kvt_free. */
KVT_API kvt_status_t kvt_stats_json(kvt_store* s, char** json);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* KVTIER_KVTIER_H_ */
