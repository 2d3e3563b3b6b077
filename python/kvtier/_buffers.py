"""Caller buffers used in place: the address and size of bytes, bytearray, memoryview, numpy arrays
and CPU torch tensors, with no copy. A wrong size, a non-contiguous buffer, a read-only buffer
where kvtier writes, or a tensor on a GPU raise ValueError naming the argument.

Buffer-protocol objects are held through a Py_buffer export for as long as the library may touch
them (a bytearray cannot be resized meanwhile); call release() when done.
"""
from __future__ import annotations

import ctypes
from ctypes import c_char_p, c_int, c_ssize_t, c_void_p
from typing import Any, Optional


class _PyBuffer(ctypes.Structure):
    _fields_ = [("buf", c_void_p), ("obj", c_void_p), ("len", c_ssize_t), ("itemsize", c_ssize_t),
                ("readonly", c_int), ("ndim", c_int), ("format", c_char_p), ("shape", c_void_p),
                ("strides", c_void_p), ("suboffsets", c_void_p), ("internal", c_void_p)]


_api = ctypes.pythonapi
_api.PyObject_GetBuffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), c_int]
_api.PyObject_GetBuffer.restype = c_int
_api.PyBuffer_Release.argtypes = [ctypes.POINTER(_PyBuffer)]
_api.PyBuffer_Release.restype = None
_PyBUF_SIMPLE, _PyBUF_WRITABLE = 0, 1


class Buffer:
    """One caller buffer, exported for the library: .ptr, .nbytes; release() ends the export."""

    def __init__(self, obj: Any, name: str, writable: bool, nbytes: Optional[int] = None):
        self.obj = obj
        self._view: Optional[_PyBuffer] = None
        if _is_tensor(obj):
            if obj.device.type != "cpu":
                raise ValueError(f"{name}: a tensor on {obj.device}; kvtier needs CPU memory")
            if not obj.is_contiguous():
                raise ValueError(f"{name}: the tensor is not contiguous")
            self.ptr = int(obj.data_ptr())
            self.nbytes = int(obj.numel() * obj.element_size())
        else:
            try:
                mv = memoryview(obj)
            except TypeError:
                raise ValueError(f"{name}: {type(obj).__name__} exposes no buffer") from None
            if not mv.c_contiguous:
                raise ValueError(f"{name}: the buffer is not contiguous")
            if writable and mv.readonly:
                raise ValueError(f"{name}: the buffer is read-only; kvtier writes into it")
            flat = mv.cast("B") if mv.ndim != 1 or mv.format != "B" else mv
            view = _PyBuffer()
            flags = _PyBUF_WRITABLE if writable else _PyBUF_SIMPLE
            if _api.PyObject_GetBuffer(flat, ctypes.byref(view), flags) != 0:
                raise ValueError(f"{name}: cannot export the buffer")
            self._view = view
            self._flat = flat
            self.ptr = int(view.buf or 0)
            self.nbytes = int(view.len)
        if nbytes is not None and self.nbytes != nbytes:
            raise ValueError(f"{name}: {self.nbytes} bytes; a block of this namespace is "
                             f"{nbytes} bytes")
        if self.nbytes == 0:
            raise ValueError(f"{name}: the buffer is empty")

    def release(self) -> None:
        if self._view is not None:
            _api.PyBuffer_Release(ctypes.byref(self._view))
            self._view = None
            self._flat = None

    def __del__(self) -> None:
        self.release()


def _is_tensor(obj: Any) -> bool:
    return hasattr(obj, "data_ptr") and hasattr(obj, "is_contiguous") and hasattr(obj, "device")


def release_all(bufs) -> None:
    for b in bufs:
        b.release()
