"""ipcnet: talk to other programs by name through the local ipc-node.

A binding of libipcnet (ctypes, the standard library only)::

    import ipcnet

    with ipcnet.connect(label="upper") as c:
        c.bind("demo.upper")
        for msg in c:
            if msg.kind == ipcnet.Kind.REQUEST:
                c.reply(msg, msg.data.upper())

and elsewhere ``ipcnet.connect().request("demo.upper", "hi").data == b"HI"``.
For asyncio, see ipcnet.aio. The C library is found through
$IPCNET_LIBRARY, else the build tree this package sits in, else the
system's libipcnet.so.1. See README.md beside the package, and ipcnet(3).
"""

from ._client import (Client, Event, Kind, KeyEvent, Message, Payload, Query, connect,
                      default_socket)
from ._native import library_path
from .errors import (ClientClosed, ConnectionLost, HostUnreachable, InvalidArgument,
                     IpcnetError, LimitReached, MessageTooLarge, NameExists, NameTooLong,
                     NoNode, NoSuchKey, NoSuchName, NotAllowed, NotConnected,
                     ProtocolError, TimedOut, TooManyClients, VersionMismatch, WouldBlock,
                     strerror)

__version__ = "0.2.0"
"""The version of ipcnet this package belongs to (ipcnet.h's)."""

__all__ = [
    "Client", "Event", "Kind", "KeyEvent", "Message", "Payload", "Query", "connect", "default_socket",
    "library_path", "strerror",
    "IpcnetError", "ClientClosed", "ConnectionLost", "HostUnreachable", "InvalidArgument",
    "LimitReached", "MessageTooLarge", "NameExists", "NameTooLong", "NoNode", "NoSuchName",
    "NoSuchKey", "NotAllowed", "NotConnected", "ProtocolError", "TimedOut", "TooManyClients",
    "VersionMismatch", "WouldBlock",
]
