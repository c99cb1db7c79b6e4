"""Exceptions: one class per errno the library returns.

Every class derives from IpcnetError, itself an OSError, and where Python
has a matching built-in one, from that too (TimedOut is a TimeoutError,
NotAllowed a PermissionError, ConnectionLost a ConnectionResetError...),
so ``except TimeoutError`` works as well as ``except ipcnet.TimedOut``.

``str(e)`` is ipcnet_strerror() and, when the node gave any, its words
for why (``e.node_words``), then the name or socket concerned
(``e.filename``)::

    [Errno 13] not allowed: denied by /etc/ipc-node/policy:3: deny bind printer: 'printer'
"""

from __future__ import annotations

import errno as _errno
import os

from . import _native


class IpcnetError(OSError):
    """A call of the library failed; ``errno`` says why (positive, as in
    Python), ``node_words`` the node's own words ("" if it gave none)."""

    node_words: str = ""


class NoSuchName(IpcnetError):
    """ENOENT: nobody holds the name (unbind: this client does not)."""


class NameExists(IpcnetError):
    """EEXIST: this client holds the name already."""


class NotAllowed(IpcnetError, PermissionError):
    """EACCES: the node's policy (or the socket's group) does not allow it."""


class TimedOut(IpcnetError, TimeoutError):
    """ETIMEDOUT: no answer within the time given."""


class ConnectionLost(IpcnetError, ConnectionResetError):
    """ECONNRESET: the node went away, or the holder of a request did."""


class NotConnected(IpcnetError, ConnectionError):
    """ENOTCONN: reconnect=True only: the node is away, the library is
    trying again."""


class HostUnreachable(IpcnetError, ConnectionError):
    """EHOSTUNREACH: the destination's node was lost or cannot be reached."""


class NoNode(IpcnetError, ConnectionError):
    """connect(): no node listens at the socket (ENOENT, ECONNREFUSED...)."""


class WouldBlock(IpcnetError, BlockingIOError):
    """EAGAIN: the call would wait (dontwait=True, or a nonblocking client)."""


class MessageTooLarge(IpcnetError):
    """EMSGSIZE: the payload is larger than ``Client.max_message``."""


class InvalidArgument(IpcnetError, ValueError):
    """EINVAL: a bad name, pattern, destination or argument."""


class NameTooLong(InvalidArgument):
    """ENAMETOOLONG: the socket path (or a name) is too long."""


class ProtocolError(IpcnetError):
    """EPROTO, EBADMSG: the node and the library do not understand each
    other; the connection is dead."""


class LimitReached(IpcnetError):
    """ENOBUFS: a limit of the node or of the library was reached (too many
    names, patterns or requests, or unread messages)."""


class TooManyClients(IpcnetError):
    """EUSERS: the node has no room for another client (of this user)."""


class NoSuchKey(NoSuchName, KeyError):
    """ENOENT from get() or delete(): the store has no such key."""


class VersionMismatch(IpcnetError):
    """ESTALE: put(..., expected_version=V) found another version."""


class ClientClosed(IpcnetError, ValueError):
    """EBADF: the client was closed."""


_BY_ERRNO: dict[int, type[IpcnetError]] = {
    _errno.ENOENT: NoSuchName,
    _errno.EEXIST: NameExists,
    _errno.EACCES: NotAllowed,
    _errno.ETIMEDOUT: TimedOut,
    _errno.ECONNRESET: ConnectionLost,
    _errno.ENOTCONN: NotConnected,
    _errno.EHOSTUNREACH: HostUnreachable,
    _errno.EAGAIN: WouldBlock,
    _errno.EMSGSIZE: MessageTooLarge,
    _errno.EINVAL: InvalidArgument,
    _errno.ENAMETOOLONG: NameTooLong,
    _errno.EPROTO: ProtocolError,
    _errno.EBADMSG: ProtocolError,
    _errno.ENOBUFS: LimitReached,
    _errno.EUSERS: TooManyClients,
    _errno.EBADF: ClientClosed,
    _errno.ESTALE: VersionMismatch,
}


def strerror(err: int) -> str:
    """The library's words for an errno (positive or negative)."""
    return _native.strerror(-abs(err))


def make(err: int, words: str = "", name: str | None = None) -> IpcnetError:
    """The exception for errno err (positive or negative), with the node's
    words and the name concerned."""
    err = abs(err)
    text = strerror(err)
    if words and words not in text:
        text = f"{text}: {words}"
    cls = _BY_ERRNO.get(err, IpcnetError)
    e = cls(err, text) if name is None else cls(err, text, name)
    e.node_words = words
    return e


def closed() -> ClientClosed:
    return ClientClosed(_errno.EBADF, "the client is closed")


# connect(2) fails with these when nobody listens where the socket should be.
_NO_NODE = (_errno.ENOENT, _errno.ECONNREFUSED, _errno.ENOTSOCK, _errno.ENOTDIR)


def connect_error(err: int, path: str | None) -> IpcnetError:
    """The exception for a failed ipcnet_connect(): what connect(2) said
    in its own words (ipcnet_strerror() reads -ENOENT as a name nobody
    holds, which is not what it means here)."""
    err = abs(err)
    if err in _NO_NODE:
        e: IpcnetError = NoNode(err, f"no node listening: {os.strerror(err)}", path)
    elif err == _errno.EACCES:
        e = NotAllowed(err, "not allowed to connect (see the socket's group in ipc-node(8)), "
                       "or the socket's directory is not safe to use", path)
    else:
        e = make(err, name=path)
    return e
