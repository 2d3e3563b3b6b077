"""The kvtier Python package: every name of C_API.md's Python section, buffers used in place and
their errors, exceptions, the GIL released during blocking calls."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

import kvtier

GEOM = dict(model="tiny@1", kv_dtype="fp16", layers=2, kv_heads=2, head_dim=64, block_tokens=4)
BB = 2 * 2 * 4 * 2 * 64 * 2  # layers x {K,V} x tokens x heads x head_dim x 2 bytes = 4 KiB


def small_store(path, **more) -> kvtier.Store:
    opts = dict(host_bytes="1MiB", host_slab_bytes="256KiB", host_mlock=False,
                nvme_bytes="2MiB", nvme_segment_bytes="1MiB")
    opts.update(more)
    return kvtier.Store(dir=str(path), **opts)


def block(seed: int) -> np.ndarray:
    return ((np.arange(BB, dtype=np.uint32) * 7 + seed * 31) % 251).astype(np.uint8)


def test_version_and_namespace(tmp_path):
    assert kvtier.version().count(".") == 2
    with small_store(tmp_path) as st:
        ns = st.namespace(**GEOM)
        assert ns.block_bytes == BB
        other = st.namespace(**GEOM, tenant_salt="b", adapter="lora-1", tp_rank=1)
        assert other.id != ns.id
        assert st.namespace(**GEOM).id == ns.id
        with pytest.raises(kvtier.Error) as e:
            st.namespace(**{**GEOM, "kv_dtype": "fp64"})
        assert e.value.status == "KVT_INVALID_ARGUMENT" and "fp64" in e.value.message


def test_match_put_get(tmp_path):
    with small_store(tmp_path) as st:
        ns = st.namespace(**GEOM)
        tokens = list(range(100, 110))  # two full blocks and a partial one
        m = ns.match_prefix(tokens)
        assert len(m.keys) == 2 and m.prefix_blocks == 0
        assert m.tiers == [kvtier.Tier.NONE] * 2
        ns.put(m.keys[0], None, tokens[0:4], block(0).tobytes())  # bytes
        ns.put(m.keys[1], m.keys[0], np.array(tokens[4:8], dtype=np.int32), block(1))
        m2 = ns.match_prefix(np.array(tokens, dtype=np.int32))
        assert m2.keys == m.keys and m2.prefix_blocks == 2
        assert m2.tiers == [kvtier.Tier.HOST] * 2
        # Another prompt sharing only the first block.
        assert ns.match_prefix(tokens[:4] + [1, 2, 3, 4]).prefix_blocks == 1
        for out in (bytearray(BB), memoryview(bytearray(BB)), np.zeros(BB, np.uint8),
                    np.zeros((2, BB // 4), np.uint16), torch.zeros(BB // 2, dtype=torch.float16)):
            assert ns.get(m.keys[1], out) == kvtier.Tier.HOST
            got = out.numpy().tobytes() if isinstance(out, torch.Tensor) else bytes(out)
            assert got == block(1).tobytes()
        with pytest.raises(kvtier.NotFound) as e:
            ns.get(ns.key_from_bytes(b"never stored"), bytearray(BB))
        assert isinstance(e.value, kvtier.Error) and e.value.status == "KVT_NOT_FOUND"


def test_bad_buffers_raise_value_error_naming_them(tmp_path):
    with small_store(tmp_path) as st:
        ns = st.namespace(**GEOM)
        k = ns.key_from_bytes(b"k")
        with pytest.raises(ValueError, match="^buf: 100 bytes"):
            ns.put(k, None, None, bytes(100))
        with pytest.raises(ValueError, match="^out: .*not contiguous"):
            ns.get(k, np.zeros(2 * BB, np.uint8)[::2])
        with pytest.raises(ValueError, match="^out: .*not contiguous"):
            ns.get(k, torch.zeros(2, BB // 2, dtype=torch.float16).t())
        with pytest.raises(ValueError, match="^out: .*read-only"):
            ns.get(k, bytes(BB))
        with pytest.raises(ValueError, match=r"^outs\[1\]: 5 bytes"):
            ns.get_batch([k, k], [bytearray(BB), bytearray(5)])
        with pytest.raises(ValueError, match=r"^bufs\[0\]"):
            ns.put_batch([k], None, None, [object()])
        with pytest.raises(ValueError, match="^block_tokens: 3 token ids"):
            ns.put(k, None, [1, 2, 3], bytes(BB))
        with pytest.raises(ValueError, match="^outs: 1 buffers for 2 keys"):
            ns.get_batch([k, k], [bytearray(BB)])
        with pytest.raises(ValueError, match="^key: expected a kvtier.Key"):
            ns.get("not a key", bytearray(BB))
        # Nothing was stored by any of these.
        assert st.stats()["store"]["puts"] == 0


def test_batches_and_async(tmp_path):
    with small_store(tmp_path, write_policy="write_through") as st:
        ns = st.namespace(**GEOM)
        keys = [ns.key_from_bytes(f"sha256:{i:04d}".encode()) for i in range(20)]
        bufs = [block(i) for i in range(20)]
        res = ns.put_batch(keys, None, None, bufs)
        assert res.statuses == ["KVT_OK"] * 20 and all(res.ok)
        pool = np.zeros((21, BB), np.uint8)  # an engine's host pool: one row per block
        res = ns.get_batch(keys + [ns.key_from_bytes(b"missing")], list(pool))
        assert res.statuses == ["KVT_OK"] * 20 + ["KVT_NOT_FOUND"]
        assert res.tiers == [kvtier.Tier.HOST] * 20 + [kvtier.Tier.NONE]
        assert np.array_equal(pool[:20], np.stack(bufs))
        pool[:] = 0
        h = ns.get_batch_async(keys, list(pool[:20]))
        res = h.wait(timeout=None)
        assert h.done() and res.statuses == ["KVT_OK"] * 20
        assert np.array_equal(pool[:20], np.stack(bufs))
        h2 = ns.put_batch_async([ns.key_from_bytes(b"x")], None, None, [block(99)])
        assert h2.wait(timeout=60).statuses == ["KVT_OK"]
        # Chained blocks with parents and tokens.
        toks = list(range(12))
        m = ns.match_prefix(toks)
        res = ns.put_batch(m.keys, [None] + m.keys[:-1], [toks[i:i + 4] for i in (0, 4, 8)],
                           [block(i) for i in range(3)])
        assert all(res.ok)
        assert ns.match_prefix(toks).prefix_blocks == 3


def test_async_release_cancels(tmp_path):
    with small_store(tmp_path, io_depth=8) as st:
        ns = st.namespace(**GEOM)
        keys = [ns.key_from_bytes(str(i).encode()) for i in range(200)]
        ns.put_batch(keys, None, None, [block(i) for i in range(200)])
        outs = [bytearray(BB) for _ in keys]
        res = ns.get_batch_async(keys, outs).release()
        assert set(res.statuses) <= {"KVT_OK", "KVT_NOT_FOUND", "KVT_UNAVAILABLE"}
        cancelled = res.statuses.count("KVT_UNAVAILABLE")
        assert st.stats()["engine"]["async_cancelled_entries"] == cancelled


def test_key_from_bytes_namespaces_apart(tmp_path):
    with small_store(tmp_path) as st:
        a = st.namespace(**GEOM)
        b = st.namespace(**GEOM, tenant_salt="tenant-b")
        assert a.key_from_bytes(b"id-1") == a.key_from_bytes(b"id-1")
        assert a.key_from_bytes(b"id-1") != a.key_from_bytes(b"id-2")
        assert a.key_from_bytes(b"id-1") != b.key_from_bytes(b"id-1")
        a.put(a.key_from_bytes(b"id-1"), None, None, block(1))
        with pytest.raises(kvtier.NotFound):
            b.get(b.key_from_bytes(b"id-1"), bytearray(BB))
        with pytest.raises(kvtier.Error) as e:
            a.key_from_bytes(b"")
        assert e.value.status == "KVT_INVALID_ARGUMENT"


def test_register_memory_direct_reads(tmp_path):
    with small_store(tmp_path) as st:
        ns = st.namespace(**GEOM)
        keys = [ns.key_from_bytes(str(i).encode()) for i in range(300)]
        ns.put_batch(keys, None, None, [block(i) for i in range(300)])  # spills to NVMe
        # Reads land in place only in 4 KiB-aligned memory (O_DIRECT): align the pool's rows.
        raw = np.zeros(300 * BB + 4096, np.uint8)
        off = -raw.ctypes.data % 4096
        pool = torch.from_numpy(raw[off:off + 300 * BB].reshape(300, BB))
        st.register_memory(pool)
        with pytest.raises(kvtier.Error) as e:
            st.register_memory(pool[5])  # overlaps
        assert e.value.status == "KVT_INVALID_ARGUMENT"
        res = ns.get_batch(keys, list(pool))
        assert kvtier.Tier.NVME in res.tiers
        hits = [i for i, s in enumerate(res.statuses) if s == "KVT_OK"]
        assert all(bytes(pool[i].numpy()) == block(i).tobytes() for i in hits)
        assert st.stats()["engine"]["direct_reads"] == res.tiers.count(kvtier.Tier.NVME)
        st.unregister_memory(pool)
        with pytest.raises(ValueError):
            st.unregister_memory(pool)


def test_events_flush_stats(tmp_path):
    with small_store(tmp_path, event_queue=1000) as st:
        ns = st.namespace(**GEOM)
        k = ns.key_from_bytes(b"a")
        ns.put(k, None, None, block(1))
        ns.put(k, None, None, block(1))  # already stored: no event
        assert st.events() == [(kvtier.EventKind.STORED, ns.id, k)]
        ns.remove(k)
        assert st.events() == [(kvtier.EventKind.REMOVED, ns.id, k)]
        assert st.events() == []
        st.flush()
        s = st.stats()
        assert s["events"]["enabled"] is True and s["events"]["pushed"] == 2
        assert "host" in s["tiers"]
    with small_store(tmp_path / "off") as st:
        with pytest.raises(kvtier.Error) as e:
            st.events()
        assert e.value.status == "KVT_UNAVAILABLE" and "event_queue" in e.value.message


def test_events_lost_when_full(tmp_path):
    with small_store(tmp_path, event_queue=4) as st:
        ns = st.namespace(**GEOM)
        keys = [ns.key_from_bytes(str(i).encode()) for i in range(10)]
        ns.put_batch(keys, None, None, [block(i) for i in range(10)])
        ev = st.events()
        assert [e[2] for e in ev] == keys[6:] and st.lost_events == 6


def test_errors_carry_status_and_message(tmp_path):
    with pytest.raises(kvtier.Error) as e:
        kvtier.Store(dir=str(tmp_path), no_such_option=1)
    assert e.value.status == "KVT_INVALID_ARGUMENT" and "no_such_option" in e.value.message
    assert "KVT_INVALID_ARGUMENT" in str(e.value)


def test_two_threads_reading_overlap(tmp_path):
    """Thread B reads small blocks in a loop, counting its reads; thread A reads a batch from NVMe
    and compares B's count just before and just after its call. The interpreter's forced GIL
    switches are pushed out to 100 s, so the only place B can run between A's two reads of the
    count is inside A's C call: B's count moves there only if that call released the GIL."""
    import sys
    with small_store(tmp_path, host_bytes="256KiB", host_slab_bytes="256KiB",
                     nvme_bytes="8MiB") as st:
        ns = st.namespace(**GEOM)
        keys = [ns.key_from_bytes(str(i).encode()) for i in range(400)]
        ns.put_batch(keys, None, None, [block(i) for i in range(400)])
        st.flush()
        hot = keys[-1]  # in the host tier (put last)
        count = [0]
        stop = threading.Event()

        def reader_b() -> None:
            out = bytearray(BB)
            while not stop.is_set():
                ns.get_batch([hot], [out])
                count[0] += 1

        outs = [bytearray(BB) for _ in range(64)]
        old = sys.getswitchinterval()
        b = threading.Thread(target=reader_b)
        overlapped = 0
        try:
            sys.setswitchinterval(100.0)
            b.start()
            for i in range(200):  # bounds the test only; normally the first calls overlap
                ks = [keys[(i * 64 + j) % 300] for j in range(64)]  # mostly NVMe
                c0 = count[0]
                ns.get_batch(ks, outs)
                if count[0] != c0:
                    overlapped += 1
                    if overlapped >= 3:
                        break
        finally:
            stop.set()
            sys.setswitchinterval(old)
            b.join()
        assert overlapped >= 3, "thread B never read while thread A was in a read"
