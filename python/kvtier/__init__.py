"""kvtier: a tiered KV-cache offload store for LLM inference (Python bindings over the C API).

    with kvtier.Store(dir="kv", host_bytes="1GiB", nvme_bytes="64GiB") as st:
        ns = st.namespace(model="llama-3-8b@main", kv_dtype="bf16", layers=32, kv_heads=8,
                          head_dim=128, block_tokens=16)
        m = ns.match_prefix(tokens)
        ...

Buffers (bytes for puts, bytearray, memoryview, numpy arrays, CPU torch tensors) are used in
place. Every call that may block releases the GIL (ctypes does so for each C call). Errors raise
kvtier.Error (.status is the status name, .message the library's message); a miss on get raises
kvtier.NotFound. See include/kvtier/kvtier.h for the semantics of each call.
"""
from __future__ import annotations

import array
import ctypes
import enum
import json
import threading
import weakref
from ctypes import byref, c_int, c_size_t, c_uint64, c_void_p
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from . import _lib
from ._buffers import Buffer, release_all

__all__ = ["Store", "Namespace", "Key", "Match", "BatchResult", "BatchHandle", "Tier",
           "EventKind", "Error", "NotFound", "Timeout", "version"]

_L = _lib.lib


class Error(Exception):
    """A kvtier call failed: .status is the status name ("KVT_BUSY"), .message the detail from
    kvt_last_error."""

    def __init__(self, status: str, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class NotFound(Error):
    """KVT_NOT_FOUND: the block is not stored (or failed its checksum)."""


class Timeout(Error):
    """KVT_TIMEOUT: a wait ended before the work did."""


def _status_name(code: int) -> str:
    return _L.kvt_status_name(code).decode()


def _raise(code: int) -> None:
    # kvt_last_error is per thread; ctypes calls run on the calling thread, so this is ours.
    msg = (_L.kvt_last_error() or b"").decode(errors="replace")
    name = _status_name(code)
    cls = {_lib.KVT_NOT_FOUND: NotFound, _lib.KVT_TIMEOUT: Timeout}.get(code, Error)
    raise cls(name, msg)


def _raise_entry(code: int, what: str) -> None:
    # A batch entry's status has no message of its own in kvt_last_error.
    name = _status_name(code)
    detail = {"KVT_NOT_FOUND": "block not stored (or its checksum failed)",
              "KVT_UNAVAILABLE": "cancelled"}.get(name, "failed")
    cls = {_lib.KVT_NOT_FOUND: NotFound, _lib.KVT_TIMEOUT: Timeout}.get(code, Error)
    raise cls(name, f"{what}: {detail}")


def _check(code: int) -> None:
    if code != _lib.KVT_OK:
        _raise(code)


def version() -> str:
    return _L.kvt_version().decode()


class Tier(enum.IntEnum):
    NONE = -1
    HBM = 0
    HOST = 1
    NVME = 2
    REMOTE = 3


class EventKind(enum.IntEnum):
    STORED = 1
    REMOVED = 2


class Key:
    """An opaque 128-bit block key, as the package returns it. Hashable and comparable."""

    __slots__ = ("lo", "hi")

    def __init__(self, lo: int, hi: int):
        self.lo = lo
        self.hi = hi

    @classmethod
    def _from_c(cls, k: _lib.kvt_key) -> "Key":
        return cls(int(k.lo), int(k.hi))

    def _c(self) -> _lib.kvt_key:
        return _lib.kvt_key(self.lo, self.hi)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and self.lo == other.lo and self.hi == other.hi

    def __hash__(self) -> int:
        return hash((self.lo, self.hi))

    def __repr__(self) -> str:
        return f"Key({self.hi:016x}{self.lo:016x})"


_ROOT = _lib.kvt_key(0, 0)


def _c_key(k: Optional[Key], name: str) -> _lib.kvt_key:
    if k is None:
        return _ROOT
    if not isinstance(k, Key):
        raise ValueError(f"{name}: expected a kvtier.Key, got {type(k).__name__}")
    return k._c()


class _Tokens:
    """Token ids as int32 in place when they already are (numpy int32, torch int32, array('i')),
    else converted once."""

    def __init__(self, tokens: Any, name: str):
        t = tokens
        if hasattr(t, "dtype") and str(t.dtype) in ("int32", "torch.int32"):
            self.buf: Optional[Buffer] = Buffer(t, name, writable=False) if _numel(t) else None
        else:
            try:
                t = array.array("i", [int(x) for x in t])
            except (TypeError, OverflowError) as e:
                raise ValueError(f"{name}: not a sequence of int32 token ids ({e})") from None
            self.buf = Buffer(t, name, writable=False) if len(t) else None
        self.n = _numel(tokens) if hasattr(tokens, "dtype") else len(t)
        self.ptr = self.buf.ptr if self.buf is not None else None

    def release(self) -> None:
        if self.buf is not None:
            self.buf.release()


def _numel(t: Any) -> int:
    n = getattr(t, "size", None)
    if callable(n):  # torch: size() is the shape
        return int(t.numel())
    return int(n) if n is not None else len(t)


class Match(NamedTuple):
    keys: List[Key]        # one per full block of the tokens
    prefix_blocks: int     # the verified cached prefix
    tiers: List[Tier]      # where each key is, Tier.NONE for a miss


class BatchResult(NamedTuple):
    statuses: List[str]    # per block: "KVT_OK", "KVT_NOT_FOUND", "KVT_UNAVAILABLE" (cancelled)...
    tiers: List[Tier]      # get: the tier each block was served from; Tier.NONE on a miss

    @property
    def ok(self) -> List[bool]:
        return [s == "KVT_OK" for s in self.statuses]


def _result(v: ctypes.Array) -> BatchResult:
    return BatchResult([_status_name(e.status) for e in v], [Tier(e.tier) for e in v])


class BatchHandle:
    """An asynchronous batch in flight (kvt_get_batch_async / kvt_put_batch_async). The buffers
    stay exported until the handle completes or is released; releasing early cancels the blocks
    not yet started (their status reads "KVT_UNAVAILABLE")."""

    def __init__(self, store: "Store", ticket: c_void_p, v: ctypes.Array, held: List[Any]):
        self._store = store
        self._ticket: Optional[c_void_p] = ticket
        self._v = v
        self._held = held
        self._result: Optional[BatchResult] = None
        self._lock = threading.Lock()

    def wait(self, timeout: Optional[float] = None) -> BatchResult:
        """Blocks (GIL released) until every block is done; kvtier.Timeout after timeout
        seconds. Returns the per-block results and releases the ticket."""
        with self._lock:
            if self._result is not None:
                return self._result
            us = -1 if timeout is None else max(0, int(timeout * 1e6))
            _check(_L.kvt_ticket_wait(self._ticket, us))
            self._finish()
            assert self._result is not None
            return self._result

    def done(self) -> bool:
        """Whether every block is done (never blocks)."""
        with self._lock:
            if self._result is not None:
                return True
            code = _L.kvt_ticket_wait(self._ticket, 0)
            if code == _lib.KVT_TIMEOUT:
                return False
            _check(code)
            self._finish()
            return True

    def release(self) -> BatchResult:
        """Cancels what has not started, waits for what has, and returns the results."""
        with self._lock:
            if self._result is None:
                self._finish()
            return self._result  # type: ignore[return-value]

    def _finish(self) -> None:
        if self._ticket is not None:
            _L.kvt_ticket_release(self._ticket)
            self._ticket = None
            self._store._handles.discard(self)
        self._result = _result(self._v)
        for h in self._held:
            h.release()
        self._held = []

    def __del__(self) -> None:
        if getattr(self, "_ticket", None) is not None:
            self.release()


class Namespace:
    """A namespace of a store (kvt_namespace_open): its geometry fixes block_bytes."""

    def __init__(self, store: "Store", ns_id: int, block_tokens: int, layers: int):
        self._st = store
        self.id = ns_id
        self.block_tokens = block_tokens
        self.layers = layers
        size = c_size_t()
        _check(_L.kvt_block_bytes(store._h, ns_id, byref(size)))
        self.block_bytes: int = size.value
        root = _lib.kvt_key()
        _check(_L.kvt_namespace_root(store._h, ns_id, byref(root)))
        self.root = Key._from_c(root)

    # -- keys ------------------------------------------------------------------------------------
    def hash_tokens(self, tokens: Any) -> List[Key]:
        """One key per full block of tokens (a trailing partial block gets none)."""
        t = _Tokens(tokens, "tokens")
        try:
            cap = t.n // self.block_tokens
            keys = (_lib.kvt_key * max(cap, 1))()
            n = c_size_t()
            _check(_L.kvt_hash_tokens(self._st._h, self.id, t.ptr, t.n, keys, cap, byref(n)))
            return [Key._from_c(keys[i]) for i in range(n.value)]
        finally:
            t.release()

    def key_from_bytes(self, block_id: bytes) -> Key:
        """An engine's own block id (1..4096 bytes) as a key of this namespace."""
        if isinstance(block_id, str):
            block_id = block_id.encode()
        block_id = bytes(block_id)
        k = _lib.kvt_key()
        _check(_L.kvt_key_from_bytes(self._st._h, self.id, block_id, len(block_id), byref(k)))
        return Key._from_c(k)

    def lookup(self, keys: Sequence[Key]) -> Tuple[int, List[Tier]]:
        """(prefix_blocks, tiers) for a chain of keys; not a use (no eviction order changes)."""
        ck = (_lib.kvt_key * max(len(keys), 1))(*[_c_key(k, "keys") for k in keys])
        tiers = (c_int * max(len(keys), 1))()
        prefix = c_size_t()
        _check(_L.kvt_lookup(self._st._h, self.id, ck, len(keys), byref(prefix), tiers))
        return prefix.value, [Tier(tiers[i]) for i in range(len(keys))]

    def match_prefix(self, tokens: Any) -> Match:
        """Hashes tokens, looks the keys up and verifies each hit's stored tokens."""
        t = _Tokens(tokens, "tokens")
        try:
            cap = t.n // self.block_tokens
            keys = (_lib.kvt_key * max(cap, 1))()
            tiers = (c_int * max(cap, 1))()
            n, prefix = c_size_t(), c_size_t()
            _check(_L.kvt_match_prefix(self._st._h, self.id, t.ptr, t.n, keys, cap, byref(n),
                                       byref(prefix), tiers))
            return Match([Key._from_c(keys[i]) for i in range(n.value)], prefix.value,
                         [Tier(tiers[i]) for i in range(n.value)])
        finally:
            t.release()

    # -- single blocks ---------------------------------------------------------------------------
    def put(self, key: Key, parent: Optional[Key], block_tokens: Any, buf: Any) -> None:
        """Stores buf (block_bytes) under key; parent None for a chain's first block;
        block_tokens: the block's token ids, or None (then hits are unverified)."""
        b = Buffer(buf, "buf", writable=False, nbytes=self.block_bytes)
        t = self._block_tokens(block_tokens, "block_tokens")
        try:
            _check(_L.kvt_put(self._st._h, self.id, _c_key(key, "key"), _c_key(parent, "parent"),
                              t.ptr if t else None, b.ptr, b.nbytes))
        finally:
            b.release()
            if t:
                t.release()

    def get(self, key: Key, out: Any) -> Tier:
        """Copies the block into out (block_bytes, writable) and returns the tier it came from;
        raises kvtier.NotFound on a miss."""
        b = Buffer(out, "out", writable=True, nbytes=self.block_bytes)
        try:
            v = (_lib.kvt_io * 1)()
            v[0].key = _c_key(key, "key")
            v[0].buf = b.ptr
            v[0].bytes = b.nbytes
            _check(_L.kvt_get_batch(self._st._h, self.id, v, 1))
            if v[0].status != _lib.KVT_OK:
                _raise_entry(v[0].status, f"get {key!r}")
            return Tier(v[0].tier)
        finally:
            b.release()

    def remove(self, key: Key) -> None:
        _check(_L.kvt_remove(self._st._h, self.id, _c_key(key, "key")))

    def drop(self) -> None:
        """Empties the namespace in every tier."""
        _check(_L.kvt_drop_namespace(self._st._h, self.id))

    # -- batches ---------------------------------------------------------------------------------
    def get_batch(self, keys: Sequence[Key], outs: Sequence[Any]) -> BatchResult:
        """Gets every block into its out buffer, all I/O of the batch together. Per-block
        results; a bad argument raises before anything moves."""
        v, held = self._entries("outs", keys, outs, None, None, writable=True)
        try:
            _check(_L.kvt_get_batch(self._st._h, self.id, v, len(keys)))
            return _result(v)
        finally:
            release_all(held)

    def put_batch(self, keys: Sequence[Key], parents: Optional[Sequence[Optional[Key]]],
                  tokens_per_block: Optional[Sequence[Any]], bufs: Sequence[Any]) -> BatchResult:
        """Puts every block; parents (None: every block a chain start) and tokens_per_block
        (None: no tokens) as in put."""
        v, held = self._entries("bufs", keys, bufs, parents, tokens_per_block, writable=False)
        try:
            _check(_L.kvt_put_batch(self._st._h, self.id, v, len(keys)))
            return _result(v)
        finally:
            release_all(held)

    def get_batch_async(self, keys: Sequence[Key], outs: Sequence[Any]) -> BatchHandle:
        """As get_batch, returning at once; wait on the handle for the results."""
        v, held = self._entries("outs", keys, outs, None, None, writable=True)
        return self._start(_L.kvt_get_batch_async, v, held, len(keys))

    def put_batch_async(self, keys: Sequence[Key], parents: Optional[Sequence[Optional[Key]]],
                        tokens_per_block: Optional[Sequence[Any]],
                        bufs: Sequence[Any]) -> BatchHandle:
        v, held = self._entries("bufs", keys, bufs, parents, tokens_per_block, writable=False)
        return self._start(_L.kvt_put_batch_async, v, held, len(keys))

    def _start(self, fn: Any, v: ctypes.Array, held: List[Any], n: int) -> BatchHandle:
        t = c_void_p()
        try:
            _check(fn(self._st._h, self.id, v, n, byref(t)))
        except BaseException:
            release_all(held)
            raise
        h = BatchHandle(self._st, t, v, held)
        self._st._handles.add(h)
        return h

    def _block_tokens(self, tokens: Any, name: str) -> Optional[_Tokens]:
        if tokens is None:
            return None
        t = _Tokens(tokens, name)
        if t.n != self.block_tokens:
            t.release()
            raise ValueError(f"{name}: {t.n} token ids; a block holds {self.block_tokens}")
        return t

    def _entries(self, bufs_name: str, keys: Sequence[Key], bufs: Sequence[Any],
                 parents: Optional[Sequence[Optional[Key]]],
                 tokens: Optional[Sequence[Any]], writable: bool):
        n = len(keys)
        if len(bufs) != n:
            raise ValueError(f"{bufs_name}: {len(bufs)} buffers for {n} keys")
        if parents is not None and len(parents) != n:
            raise ValueError(f"parents: {len(parents)} entries for {n} keys")
        if tokens is not None and len(tokens) != n:
            raise ValueError(f"tokens_per_block: {len(tokens)} entries for {n} keys")
        v = (_lib.kvt_io * max(n, 1))()
        held: List[Any] = []
        try:
            for i in range(n):
                b = Buffer(bufs[i], f"{bufs_name}[{i}]", writable=writable,
                           nbytes=self.block_bytes)
                held.append(b)
                e = v[i]
                e.key = _c_key(keys[i], f"keys[{i}]")
                e.parent = _c_key(parents[i] if parents is not None else None, f"parents[{i}]")
                if tokens is not None and tokens[i] is not None:
                    t = self._block_tokens(tokens[i], f"tokens_per_block[{i}]")
                    held.append(t)
                    e.tokens = ctypes.cast(t.ptr, ctypes.POINTER(ctypes.c_int32))
                e.buf = b.ptr
                e.bytes = b.nbytes
        except BaseException:
            release_all(held)
            raise
        return v, held


_EVENT_CAP = 1024


class Store:
    """An open kvtier store (kvt_open). Options are kvt_options_set names; values may be str, int
    or bool. Use as a context manager, or call close()."""

    def __init__(self, dir: Optional[str] = None, host_bytes: Any = None, nvme_bytes: Any = None,
                 **more_options: Any):
        opts: Dict[str, Any] = dict(more_options)
        if dir is not None:
            opts["dir"] = dir
        if host_bytes is not None:
            opts["host_bytes"] = host_bytes
        if nvme_bytes is not None:
            opts["nvme_bytes"] = nvme_bytes
        o = _L.kvt_options_create()
        if not o:
            raise MemoryError("kvt_options_create")
        try:
            for name, value in opts.items():
                if isinstance(value, bool):
                    value = "true" if value else "false"
                _check(_L.kvt_options_set(o, str(name).encode(), str(value).encode()))
            h = c_void_p()
            _check(_L.kvt_open(o, byref(h)))
        finally:
            _L.kvt_options_destroy(o)
        self._h: Optional[c_void_p] = h
        self._handles: "weakref.WeakSet[BatchHandle]" = weakref.WeakSet()
        self._registered: Dict[int, Buffer] = {}
        self.lost_events = 0  # events dropped because the queue was full, over this store's life

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Releases open batch handles and registered memory, flushes and closes."""
        if self._h is None:
            return
        for h in list(self._handles):
            h.release()
        for addr in list(self._registered):
            self._unregister(addr)
        h, self._h = self._h, None
        _check(_L.kvt_close(h))

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def namespace(self, model: str, kv_dtype: str, layers: int, kv_heads: int, head_dim: int,
                  block_tokens: int, tenant_salt: Optional[str] = None,
                  adapter: Optional[str] = None, tp_rank: int = 0, mla: bool = False,
                  lossy_ok: bool = False) -> Namespace:
        """lossy_ok: KVT_NS_LOSSY_OK, blocks may travel between nodes as fp8 (fp16/bf16 only)."""
        d = _lib.kvt_namespace_desc()
        d.model = model.encode()
        d.kv_dtype = kv_dtype.encode()
        d.tenant_salt = tenant_salt.encode() if tenant_salt is not None else None
        d.adapter = adapter.encode() if adapter is not None else None
        d.layers, d.kv_heads, d.head_dim, d.block_tokens = layers, kv_heads, head_dim, block_tokens
        d.tp_rank = tp_rank
        d.flags = (1 if mla else 0) | (2 if lossy_ok else 0)
        ns = c_uint64()
        _check(_L.kvt_namespace_open(self._h, byref(d), byref(ns)))
        return Namespace(self, ns.value, block_tokens, layers)

    def register_memory(self, pool: Any) -> None:
        """Registers a writable buffer (an engine's host KV pool) so that gets into it land from
        NVMe with no bounce copy. It stays exported (a bytearray cannot be resized) until
        unregister_memory or close."""
        b = Buffer(pool, "pool", writable=True)
        try:
            _check(_L.kvt_register_memory(self._h, b.ptr, b.nbytes))
        except BaseException:
            b.release()
            raise
        self._registered[b.ptr] = b

    def unregister_memory(self, pool: Any) -> None:
        """Unregisters a buffer given to register_memory; waits for reads into it."""
        b = Buffer(pool, "pool", writable=True)
        addr = b.ptr
        b.release()
        if addr not in self._registered:
            raise ValueError("pool: not registered with this store")
        self._unregister(addr)

    def _unregister(self, addr: int) -> None:
        b = self._registered.pop(addr)
        try:
            _check(_L.kvt_unregister_memory(self._h, addr))
        finally:
            b.release()

    def flush(self) -> None:
        _check(_L.kvt_flush(self._h))

    def stats(self) -> Dict[str, Any]:
        """The kvt_stats_json object."""
        p = c_void_p()
        _check(_L.kvt_stats_json(self._h, byref(p)))
        try:
            return json.loads(ctypes.string_at(p.value).decode())
        finally:
            _L.kvt_free(p)

    def events(self) -> List[Tuple[EventKind, int, Key]]:
        """Every queued event, oldest first, as (kind, namespace id, key). Raises kvtier.Error
        (KVT_UNAVAILABLE) unless the store was opened with event_queue > 0. Events dropped
        because the queue was full are added to self.lost_events."""
        out: List[Tuple[EventKind, int, Key]] = []
        buf = (_lib.kvt_event * _EVENT_CAP)()
        while True:
            n, lost = c_size_t(), c_uint64()
            _check(_L.kvt_events_poll(self._h, buf, _EVENT_CAP, byref(n), byref(lost)))
            self.lost_events += lost.value
            out.extend((EventKind(buf[i].kind), int(buf[i].ns), Key._from_c(buf[i].key))
                       for i in range(n.value))
            if n.value < _EVENT_CAP:
                return out
