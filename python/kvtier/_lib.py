"""The C library behind the package: finding libkvtier.so, the C types and every prototype.

ctypes releases the GIL for every call through a CDLL, so a call that blocks on I/O (get, put,
batches, flush, ticket waits) lets other Python threads run.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from ctypes import (POINTER, Structure, c_char_p, c_int, c_int32, c_int64, c_size_t, c_uint32,
                    c_uint64, c_void_p)
from typing import List

STATUS_NAMES = [
    "KVT_OK", "KVT_NOT_FOUND", "KVT_INVALID_ARGUMENT", "KVT_IO_ERROR", "KVT_CORRUPTION",
    "KVT_NO_SPACE", "KVT_BUSY", "KVT_TIMEOUT", "KVT_UNAVAILABLE", "KVT_PERMISSION_DENIED",
    "KVT_INTERNAL",
]
KVT_OK, KVT_NOT_FOUND, KVT_TIMEOUT = 0, 1, 7


class kvt_key(Structure):
    _fields_ = [("lo", c_uint64), ("hi", c_uint64)]


class kvt_namespace_desc(Structure):
    _fields_ = [("model", c_char_p), ("kv_dtype", c_char_p), ("tenant_salt", c_char_p),
                ("adapter", c_char_p), ("layers", c_uint32), ("kv_heads", c_uint32),
                ("head_dim", c_uint32), ("block_tokens", c_uint32), ("tp_rank", c_uint32),
                ("flags", c_uint32)]


class kvt_io(Structure):
    _fields_ = [("key", kvt_key), ("parent", kvt_key), ("tokens", POINTER(c_int32)),
                ("buf", c_void_p), ("bytes", c_size_t), ("status", c_int), ("tier", c_int)]


class kvt_event(Structure):
    _fields_ = [("kind", c_int), ("ns", c_uint64), ("key", kvt_key)]


def _candidates() -> List[str]:
    """Where libkvtier.so may be: $KVTIER_LIBRARY, beside an installed package
    (PREFIX/lib/python3/dist-packages/kvtier -> PREFIX/lib), a build tree next to python/, then
    the loader's search path."""
    out = []
    env = os.environ.get("KVTIER_LIBRARY")
    if env:
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    try:  # installed: PREFIX/<KVT_PYTHON_INSTALL_DIR>/kvtier with _libdir.py beside it
        from ._libdir import LIBDIR  # type: ignore[import-not-found]
        for up in ("../../../..", "../../.."):
            prefix = os.path.join(here, up)
            for name in ("libkvtier.so", "libkvtier.so.0"):
                out.append(os.path.normpath(os.path.join(prefix, LIBDIR, name)))
    except ImportError:  # the source tree: the library is in a build folder beside python/
        pass
    for rel in ("../../build",):
        for name in ("libkvtier.so", "libkvtier.so.0"):
            out.append(os.path.normpath(os.path.join(here, rel, name)))
    found = ctypes.util.find_library("kvtier")
    if found:
        out.append(found)
    out.append("libkvtier.so.0")
    return out


def _load() -> ctypes.CDLL:
    errors = []
    for path in _candidates():
        if os.path.isabs(path) and not os.path.exists(path):
            continue
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            errors.append(f"{path}: {e}")
    raise ImportError("kvtier: cannot load libkvtier.so (set KVTIER_LIBRARY to its path): " +
                      "; ".join(errors or ["not found"]))


lib = _load()

_S = c_int  # kvt_status_t
_P = c_void_p
_PROTOS = {
    "kvt_version": (c_char_p, []),
    "kvt_last_error": (c_char_p, []),
    "kvt_status_name": (c_char_p, [c_int]),
    "kvt_free": (None, [_P]),
    "kvt_options_create": (_P, []),
    "kvt_options_destroy": (None, [_P]),
    "kvt_options_set": (_S, [_P, c_char_p, c_char_p]),
    "kvt_open": (_S, [_P, POINTER(_P)]),
    "kvt_close": (_S, [_P]),
    "kvt_flush": (_S, [_P]),
    "kvt_namespace_open": (_S, [_P, POINTER(kvt_namespace_desc), POINTER(c_uint64)]),
    "kvt_block_bytes": (_S, [_P, c_uint64, POINTER(c_size_t)]),
    "kvt_namespace_root": (_S, [_P, c_uint64, POINTER(kvt_key)]),
    "kvt_hash_tokens": (_S, [_P, c_uint64, _P, c_size_t, POINTER(kvt_key), c_size_t,
                             POINTER(c_size_t)]),
    "kvt_lookup": (_S, [_P, c_uint64, POINTER(kvt_key), c_size_t, POINTER(c_size_t),
                        POINTER(c_int)]),
    "kvt_match_prefix": (_S, [_P, c_uint64, _P, c_size_t, POINTER(kvt_key), c_size_t,
                              POINTER(c_size_t), POINTER(c_size_t), POINTER(c_int)]),
    "kvt_put": (_S, [_P, c_uint64, kvt_key, kvt_key, _P, _P, c_size_t]),
    "kvt_get": (_S, [_P, c_uint64, kvt_key, _P, c_size_t]),
    "kvt_remove": (_S, [_P, c_uint64, kvt_key]),
    "kvt_drop_namespace": (_S, [_P, c_uint64]),
    "kvt_ticket_wait": (_S, [_P, c_int64]),
    "kvt_ticket_release": (None, [_P]),
    "kvt_get_batch": (_S, [_P, c_uint64, POINTER(kvt_io), c_size_t]),
    "kvt_put_batch": (_S, [_P, c_uint64, POINTER(kvt_io), c_size_t]),
    "kvt_get_batch_async": (_S, [_P, c_uint64, POINTER(kvt_io), c_size_t, POINTER(_P)]),
    "kvt_put_batch_async": (_S, [_P, c_uint64, POINTER(kvt_io), c_size_t, POINTER(_P)]),
    "kvt_register_memory": (_S, [_P, _P, c_size_t]),
    "kvt_unregister_memory": (_S, [_P, _P]),
    "kvt_key_from_bytes": (_S, [_P, c_uint64, c_char_p, c_size_t, POINTER(kvt_key)]),
    "kvt_events_poll": (_S, [_P, POINTER(kvt_event), c_size_t, POINTER(c_size_t),
                             POINTER(c_uint64)]),
    "kvt_stats_json": (_S, [_P, POINTER(c_void_p)]),
}
for _name, (_res, _args) in _PROTOS.items():
    _f = getattr(lib, _name)
    _f.restype = _res
    _f.argtypes = _args
