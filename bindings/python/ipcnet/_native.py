"""The C library, through ctypes: where it is found, and the prototypes.

Private: the public API is in the package itself. Every prototype here is
copied from libnet/ipcnet.h; ipcnet_msg_t is mirrored field for field.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

SONAME = "libipcnet.so.1"

# Flags and constants of ipcnet.h.
NONBLOCK = 0x01
RECONNECT = 0x02
DONTWAIT = 0x01
MORE = 0x02
CONFIRM = 0x04
EPHEMERAL = 0x01   # ipcnet_put_full() flags
IF = 0x02


class Msg(ctypes.Structure):
    """ipcnet_msg_t, in the order and with the types of ipcnet.h."""

    _fields_ = [
        ("kind", ctypes.c_int),
        ("event", ctypes.c_int),
        ("error", ctypes.c_int),
        ("id", ctypes.c_uint32),
        ("timeout_ms", ctypes.c_uint32),
        ("source", ctypes.c_char_p),
        ("name", ctypes.c_char_p),
        ("node", ctypes.c_char_p),
        ("data", ctypes.c_void_p),
        ("size", ctypes.c_size_t),
        ("uid", ctypes.c_uint32),
        ("user", ctypes.c_char_p),
        ("node_id", ctypes.c_char_p),
        ("gap_ms", ctypes.c_uint32),
        ("total", ctypes.c_size_t),
        ("version", ctypes.c_uint64),
    ]


HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(Msg), ctypes.c_void_p)


def library_path() -> str:
    """Where the library is taken from: $IPCNET_LIBRARY, else the build
    tree this package sits in (in-tree or build/), else the system's."""
    env = os.environ.get("IPCNET_LIBRARY")
    if env:
        return env
    top = Path(__file__).resolve().parents[3]
    if (top / "libnet" / "ipcnet.h").is_file():
        for build in (top, top / "build"):
            lib = build / "libnet" / ".libs" / SONAME
            if lib.is_file():
                return str(lib)
    return ctypes.util.find_library("ipcnet") or SONAME


def _load() -> ctypes.CDLL:
    path = library_path()
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise ImportError(
            f"ipcnet: cannot load the C library {path!r} ({e}); install libipcnet "
            f"({SONAME}) or set IPCNET_LIBRARY to its path") from e
    p, i, u32, sz = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_size_t
    s = ctypes.c_char_p
    pp = ctypes.POINTER(ctypes.c_void_p)
    protos = {
        "ipcnet_connect": (i, [pp, s, s, i]),
        "ipcnet_default_socket": (i, [ctypes.c_char_p, sz]),
        "ipcnet_close": (None, [pp]),
        "ipcnet_last_error": (s, [p]),
        "ipcnet_address": (s, [p]),
        "ipcnet_node": (s, [p]),
        "ipcnet_max_message": (sz, [p]),
        "ipcnet_fd": (i, [p]),
        "ipcnet_want_write": (i, [p]),
        "ipcnet_pending": (i, [p]),
        "ipcnet_dispatch": (i, [p, HANDLER, p]),
        "ipcnet_recv": (i, [p, ctypes.POINTER(Msg), i]),
        "ipcnet_flush": (i, [p, i]),
        "ipcnet_bind": (i, [p, s]),
        "ipcnet_unbind": (i, [p, s]),
        "ipcnet_send": (i, [p, s, p, sz, i]),
        "ipcnet_last_id": (u32, [p]),
        "ipcnet_request": (i, [p, s, p, sz, i, ctypes.POINTER(Msg)]),
        "ipcnet_request_async": (i, [p, s, p, sz, i, ctypes.POINTER(u32)]),
        "ipcnet_reply_to": (i, [p, s, u32, p, sz]),
        "ipcnet_subscribe": (i, [p, s]),
        "ipcnet_unsubscribe": (i, [p, s]),
        "ipcnet_publish": (i, [p, s, p, sz, i]),
        "ipcnet_watch": (i, [p, s]),
        "ipcnet_unwatch": (i, [p, s]),
        "ipcnet_monitor": (i, [p, s]),
        "ipcnet_query": (i, [p, i, pp]),
        "ipcnet_diagnose": (i, [p, s, pp]),
        "ipcnet_put_full": (i, [p, s, p, sz, u32, i, ctypes.c_uint64,
                                ctypes.POINTER(ctypes.c_uint64)]),
        "ipcnet_get": (i, [p, s, ctypes.POINTER(Msg), i]),
        "ipcnet_del": (i, [p, s]),
        "ipcnet_keys": (i, [p, s, pp]),
        "ipcnet_watch_keys": (i, [p, s]),
        "ipcnet_unwatch_keys": (i, [p, s]),
        "ipcnet_strerror": (s, [i]),
    }
    for name, (restype, argtypes) in protos.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


lib = _load()

# ipcnet_query()'s text is the caller's, to free(3) with the C library's free.
_libc = ctypes.CDLL(None)
free = _libc.free
free.restype = None
free.argtypes = [ctypes.c_void_p]


def strerror(err: int) -> str:
    """ipcnet_strerror() of a negative errno, as text."""
    return lib.ipcnet_strerror(err).decode("utf-8", "replace")
