"""Client, Message and connect(): the library's calls, the Python way."""

from __future__ import annotations

import contextlib
import ctypes
import enum
import errno as _errno
import os
import select
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Union

from . import _native, errors
from ._native import lib

Payload = Union[str, bytes, bytearray, memoryview]
"""What a payload may be: bytes-like, or str (sent as UTF-8)."""

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


class Kind(enum.IntEnum):
    """What a received message is (ipcnet_kind_t)."""

    SEND = 1        #: sent to a name we hold, or to our address
    REQUEST = 2     #: a request: answer it with Client.reply()
    REPLY = 3       #: the reply to Client.request_async()
    PUBLISH = 4     #: a publication on a topic we subscribe to
    EVENT = 5       #: a watched name or a peer came or went
    ERROR = 6       #: an earlier send, publish or request failed
    MONITOR = 7     #: Client.monitor(): a message the node routed
    KEY = 8         #: Client.watch_keys(): a key put or deleted; Client.get()


class Event(enum.IntEnum):
    """Message.event of an EVENT (IPCNET_EV_*)."""

    NAME_UP = 1     #: a name gained its first holder
    NAME_DOWN = 2   #: a name lost its last holder
    PEER_UP = 3     #: a node joined
    PEER_DOWN = 4   #: a node left or was lost
    NODE_DOWN = 5   #: reconnect=True: our node went away
    NODE_UP = 6     #: reconnect=True: it is back, all held again


class KeyEvent(enum.IntEnum):
    """Message.event of a KEY (IPCNET_KEY_*)."""

    PUT = 1         #: put: data is the new value, version its version
    DEL = 2         #: deleted, expired, or its ephemeral owner went


class Query(enum.IntEnum):
    """What Client.query() asks for (IPCNET_Q_*)."""

    SERVICES = 1
    PEERS = 2
    STATS = 3
    CLIENTS = 4


_DELIVERED = (Kind.SEND, Kind.REQUEST, Kind.REPLY, Kind.PUBLISH)


def _str(b: Optional[bytes]) -> str:
    return b.decode("utf-8", "surrogateescape") if b else ""


@dataclass(frozen=True, slots=True, repr=False)
class Message:
    """A received message, copied out of the library's buffer: it stays
    valid for as long as you keep it.

    ``error`` is a positive errno (0 unless ERROR); ``uid`` is None where
    no sender is known (EVENT, ERROR); ``event`` is None unless EVENT.
    """

    kind: Kind
    source: str = ""            #: unique address of the sender ("" if none)
    name: str = ""              #: name or topic it was sent to; EVENT: the name
    node: str = ""              #: EVENT: node of the name or peer; else the sender's node
    data: bytes = b""           #: payload; ERROR: the node's words for why
    id: int = 0                 #: request id (REQUEST, REPLY); ERROR: id of what failed
    event: Optional[Any] = None  #: EVENT: an Event; MONITOR: the Kind routed (0: notes lost)
    error: int = 0
    timeout_ms: int = 0         #: REQUEST: how long the requester still waits
    uid: Optional[int] = None   #: the sender's uid on its node
    user: str = ""              #: the sender's user name on its node
    node_id: str = ""           #: the sender's node's id (32 hex digits)
    gap_ms: int = 0             #: EVENT NODE_UP: how long the node was away
    total: int = 0              #: MONITOR: the whole size of the message routed
    version: int = 0            #: KEY: the version of the key (its write's stamp)

    @property
    def text(self) -> str:
        """The payload as text (UTF-8; undecodable bytes replaced)."""
        return self.data.decode("utf-8", "replace")

    def exception(self) -> Optional[errors.IpcnetError]:
        """For an ERROR, the exception that says why; else None."""
        if self.kind != Kind.ERROR:
            return None
        return errors.make(self.error or _errno.EPROTO, self.text, self.name or None)

    def __repr__(self) -> str:
        parts = [f"kind={self.kind.name}"]
        for f in ("source", "name", "node", "id", "event", "error", "timeout_ms",
                  "uid", "user", "node_id", "gap_ms", "total", "version"):
            v = getattr(self, f)
            if (f == "uid" and v is not None) or v not in ("", 0, None):
                parts.append(f"{f}={v.name if isinstance(v, (Event, KeyEvent)) else v!r}")
        d = self.data
        parts.append(f"data={d[:64]!r}{'...' if len(d) > 64 else ''}")
        return f"Message({', '.join(parts)})"

    @classmethod
    def _from_c(cls, m: _native.Msg) -> "Message":
        try:
            kind = Kind(m.kind)
        except ValueError:      # a kind newer than this package
            kind = m.kind  # type: ignore[assignment]
        event: Optional[Any] = None
        if kind == Kind.EVENT:
            try:
                event = Event(m.event)
            except ValueError:
                event = m.event
        elif kind == Kind.KEY:
            try:
                event = KeyEvent(m.event)
            except ValueError:
                event = m.event
        elif kind == Kind.MONITOR:
            # The kind of what was routed; 0: id notes were lost.
            event = Kind(m.event) if m.event in (1, 2, 3, 4) else 0
        return cls(
            kind=kind,
            source=_str(m.source),
            name=_str(m.name),
            node=_str(m.node),
            data=ctypes.string_at(m.data, m.size) if m.size else b"",
            id=m.id,
            event=event,
            error=-m.error if m.error < 0 else m.error,
            timeout_ms=m.timeout_ms,
            uid=m.uid if kind in _DELIVERED or (kind == Kind.MONITOR and m.event) else None,
            user=_str(m.user),
            node_id=_str(m.node_id),
            gap_ms=m.gap_ms,
            total=m.total,
            version=m.version,
        )


def _name(s: Union[str, bytes], what: str = "name") -> bytes:
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    if b"\0" in b:
        raise errors.InvalidArgument(_errno.EINVAL, f"a {what} with a NUL byte", s)
    return b


def _payload(data: Optional[Payload]) -> tuple[Any, int]:
    """A pointer ctypes takes, and the size, without copying bytes."""
    if data is None:
        return None, 0
    if isinstance(data, str):
        data = data.encode("utf-8")
    if isinstance(data, bytes):
        return data, len(data)
    mv = memoryview(data)
    if mv.nbytes == 0:
        return None, 0
    if mv.readonly or not mv.c_contiguous:
        b = mv.tobytes()
        return b, len(b)
    return (ctypes.c_char * mv.nbytes).from_buffer(mv.cast("B")), mv.nbytes


def _ms(timeout: Optional[float], none: int) -> int:
    """Seconds (float) to the library's milliseconds; None gives none."""
    if timeout is None:
        return none
    if timeout < 0:
        raise ValueError("timeout must be None or >= 0")
    ms = int(timeout * 1000 + 0.999)
    return min(ms, 2**31 - 1)


def default_socket() -> str:
    """The socket connect() uses when given no path (ipcnet_default_socket)."""
    buf = ctypes.create_string_buffer(4096)
    rc = lib.ipcnet_default_socket(buf, len(buf))
    if rc < 0:
        raise errors.make(rc)
    return os.fsdecode(buf.value)


def connect(path: Optional[PathLike] = None, label: Optional[str] = None,
            reconnect: bool = False, nonblock: bool = False) -> "Client":
    """Connects to the local node at path (None: default_socket()).

    label names the program in the node's listings. reconnect=True: the
    client survives the node going away (NODE_DOWN and NODE_UP events, see
    ipcnet(3)). nonblock=True: calls that would wait raise WouldBlock.
    Raises NoNode when no node listens there, NotAllowed when the socket
    is not ours to use.
    """
    return Client(path, label, reconnect=reconnect, nonblock=nonblock)


Handler = Callable[[Message], Any]


class Client:
    """A connection to the local node (an ipcnet_t handle).

    Use it as a context manager, or close() it. Calls are serialised: one
    thread at a time is inside the library with it. A recv() that waits
    does so outside the library, so another thread may send meanwhile;
    other calls that wait for the node (request(), bind(), a send with
    confirm=True) hold the client until their answer or their timeout.
    """

    def __init__(self, path: Optional[PathLike] = None, label: Optional[str] = None,
                 *, reconnect: bool = False, nonblock: bool = False):
        self._lock = threading.Lock()
        self._h: Optional[ctypes.c_void_p] = None
        self._pending: deque[Message] = deque()     # taken from the library, not yet handed out
        self._words: tuple[str, int] = ("", 0)      # the node's words last seen, with their errno
        self._wakers: set[int] = set()              # eventfds of threads waiting in recv()
        self._reconnect = reconnect
        self._nonblock = nonblock
        flags = (_native.RECONNECT if reconnect else 0) | (_native.NONBLOCK if nonblock else 0)
        p = os.fsencode(path) if path is not None else None
        if p is not None and b"\0" in p:
            raise errors.InvalidArgument(_errno.EINVAL, "a path with a NUL byte", path)
        h = ctypes.c_void_p()
        rc = lib.ipcnet_connect(ctypes.byref(h), p,
                                _name(label, "label") if label is not None else None, flags)
        if rc < 0:
            where = os.fsdecode(p) if p is not None else None
            if where is None:
                try:
                    where = default_socket()
                except errors.IpcnetError:
                    pass
            raise errors.connect_error(rc, where)
        self._h = h
        if p is None:
            try:
                p = os.fsencode(default_socket())
            except errors.IpcnetError:
                p = b""
        self.path: str = os.fsdecode(p)
        """The socket it connected to."""
        self.label: Optional[str] = label

    # --- the handle -----------------------------------------------------

    def _handle(self) -> ctypes.c_void_p:
        if self._h is None:
            raise errors.closed()
        return self._h

    def _done(self) -> None:
        """After a call that may have read from the socket (under the
        lock): wake the threads waiting in recv(), whose descriptor may
        not say that messages wait in the library's buffer now."""
        for fd in self._wakers:
            os.eventfd_write(fd, 1)

    def _error(self, rc: int, name: Optional[Union[str, bytes]] = None) -> errors.IpcnetError:
        """The exception for rc, with the node's words if they are this
        failure's. ipcnet_last_error() keeps its words until the next
        failure that has some, so words already seen are this failure's
        only if it failed the same way again (the same rule, say)."""
        words = ""
        h = self._h
        if h is not None:
            words = _str(lib.ipcnet_last_error(h))
            if words and words == self._words[0] and rc != self._words[1]:
                words = ""      # an earlier failure's
            elif words:
                self._words = (words, rc)
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        return errors.make(rc, words, name)

    def close(self) -> None:
        """Closes the connection: the node drops the names it held, its
        subscriptions and watches. Data queued with more=True is flushed
        first if that does not block. Closing twice is harmless."""
        with self._lock:
            if self._h is not None:
                lib.ipcnet_close(ctypes.byref(self._h))
                self._h = None
            self._done()        # threads in recv() find it closed

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._h is None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        h = getattr(self, "_h", None)
        if h is not None and lib is not None:
            lib.ipcnet_close(ctypes.byref(h))
            self._h = None

    def __repr__(self) -> str:
        if self._h is None:
            return "<ipcnet.Client closed>"
        return f"<ipcnet.Client {self.address} at {self.path!r}>"

    # --- what the node told us ------------------------------------------

    @property
    def address(self) -> str:
        """This client's unique address, ":N@node" (new after a reconnection)."""
        with self._lock:
            return _str(lib.ipcnet_address(self._handle()))

    @property
    def node(self) -> str:
        """The name of the node it is connected to."""
        with self._lock:
            return _str(lib.ipcnet_node(self._handle()))

    @property
    def max_message(self) -> int:
        """The largest payload the node accepts, in bytes."""
        with self._lock:
            return lib.ipcnet_max_message(self._handle())

    @property
    def last_id(self) -> int:
        """The sequence number of the last send, publish or request."""
        with self._lock:
            return lib.ipcnet_last_id(self._handle())

    @property
    def want_write(self) -> bool:
        """True while data is queued: watch fileno() for writing too
        (but see fileno() for reconnect=True)."""
        with self._lock:
            return bool(lib.ipcnet_want_write(self._handle()))

    @property
    def reconnect(self) -> bool:
        """Whether the client was made with reconnect=True."""
        return self._reconnect

    @property
    def nonblock(self) -> bool:
        """Whether the client was made with nonblock=True."""
        return self._nonblock

    def fileno(self) -> int:
        """The descriptor to watch (selectors, poll): readable when there is
        something for dispatch() or recv(); while want_write, watch it for
        writing too. With reconnect=True it is the same descriptor for the
        client's life and is watched for reading only."""
        with self._lock:
            return lib.ipcnet_fd(self._handle())

    @contextlib.contextmanager
    def _using(self) -> Iterator[ctypes.c_void_p]:
        """The handle, held for one call; then wakes the threads waiting in
        recv(), as the call may have read their messages."""
        with self._lock:
            try:
                yield self._handle()
            finally:
                if self._wakers:
                    self._done()

    # --- names, topics, watches -----------------------------------------

    def _hold(self, fn: Any, name: Union[str, bytes]) -> None:
        b = _name(name)
        with self._using() as h:
            rc = fn(h, b)
            if rc < 0:
                raise self._error(rc, name)

    def bind(self, name: str) -> None:
        """Holds a service name (many clients may hold one); waits for the
        node's answer. NameExists if this client holds it already."""
        self._hold(lib.ipcnet_bind, name)

    def unbind(self, name: str) -> None:
        """Gives a name back. NoSuchName if this client does not hold it."""
        self._hold(lib.ipcnet_unbind, name)

    def subscribe(self, pattern: str) -> None:
        """Subscribes to topics: "sensors.temp", "sensors.*" or "*"."""
        self._hold(lib.ipcnet_subscribe, pattern)

    def unsubscribe(self, pattern: str) -> None:
        """Takes back a pattern given to subscribe()."""
        self._hold(lib.ipcnet_unsubscribe, pattern)

    def watch(self, pattern: str) -> None:
        """Watches names matching pattern ("*": all): a NAME_UP event for
        each name held now, then NAME_UP / NAME_DOWN as they come and go."""
        self._hold(lib.ipcnet_watch, pattern)

    def unwatch(self, pattern: str) -> None:
        """Stops watching a pattern."""
        self._hold(lib.ipcnet_unwatch, pattern)

    # --- sending --------------------------------------------------------

    def _post(self, fn: Any, dest: Union[str, bytes], data: Optional[Payload],
              confirm: bool, more: bool, dontwait: bool) -> int:
        b = _name(dest, "destination")
        buf, n = _payload(data)
        flags = ((_native.CONFIRM if confirm else 0) | (_native.MORE if more else 0)
                 | (_native.DONTWAIT if dontwait else 0))
        with self._using() as h:
            rc = fn(h, b, buf, n, flags)
            if rc < 0:
                raise self._error(rc, dest)
            return lib.ipcnet_last_id(h)

    def send(self, dest: str, data: Optional[Payload] = b"", *, confirm: bool = False,
             more: bool = False, dontwait: bool = False) -> int:
        """Sends data to dest: a name (one holder gets it), "name@node" or
        an address ":N@node". Returns the message's sequence number: a
        failure comes back later as an ERROR message with that id.

        confirm=True waits until the receiver's node wrote it to the
        receiver's socket and raises the failure itself (NoSuchName...).
        more=True queues it to go with the next ones (end with flush()).
        dontwait=True raises WouldBlock rather than wait for room.
        """
        return self._post(lib.ipcnet_send, dest, data, confirm, more, dontwait)

    def publish(self, topic: str, data: Optional[Payload] = b"", *, confirm: bool = False,
                more: bool = False, dontwait: bool = False) -> int:
        """Publishes data on topic to every subscriber, on every node; the
        flags are send()'s (confirm: until queued and forwarded)."""
        return self._post(lib.ipcnet_publish, topic, data, confirm, more, dontwait)

    def flush(self, timeout: Optional[float] = None) -> None:
        """Writes everything queued (more=True), waiting up to timeout
        seconds (None: as long as it takes). TimedOut if it could not."""
        ms = _ms(timeout, -1)
        with self._using() as h:
            rc = lib.ipcnet_flush(h, ms)
            if rc < 0:
                raise self._error(rc)

    # --- requests -------------------------------------------------------

    def request(self, dest: str, data: Optional[Payload] = b"",
                timeout: Optional[float] = None) -> Message:
        """Sends a request and waits for its reply (a REPLY Message), at
        most timeout seconds (None: the node's default). Raises NoSuchName,
        TimedOut, ConnectionLost (the holder went away), HostUnreachable...
        Messages that arrive meanwhile stay queued, in order, for recv()."""
        b = _name(dest, "destination")
        buf, n = _payload(data)
        ms = _ms(timeout, 0)
        m = _native.Msg()
        with self._using() as h:
            rc = lib.ipcnet_request(h, b, buf, n, ms, ctypes.byref(m))
            if rc < 0:
                raise self._error(rc, dest)
            return Message._from_c(m)

    def request_async(self, dest: str, data: Optional[Payload] = b"",
                      timeout: Optional[float] = None) -> int:
        """Sends a request without waiting; returns its id. The reply (or
        the ERROR that replaces it) comes through recv() with msg.id == id."""
        b = _name(dest, "destination")
        buf, n = _payload(data)
        ms = _ms(timeout, 0)
        rid = ctypes.c_uint32()
        with self._using() as h:
            rc = lib.ipcnet_request_async(h, b, buf, n, ms, ctypes.byref(rid))
            if rc < 0:
                raise self._error(rc, dest)
        return rid.value

    def reply(self, request: Message, data: Optional[Payload] = b"") -> None:
        """Answers a REQUEST message (at any later time: the message is a copy)."""
        if request.kind != Kind.REQUEST:
            raise errors.InvalidArgument(_errno.EINVAL, "reply() to a message that is not "
                                         f"a request ({request.kind!r})")
        self.reply_to(request.source, request.id, data)

    def reply_to(self, source: str, id: int, data: Optional[Payload] = b"") -> None:
        """Answers the request id of the client at address source."""
        b = _name(source, "address")
        buf, n = _payload(data)
        with self._using() as h:
            rc = lib.ipcnet_reply_to(h, b, id, buf, n)
            if rc < 0:
                raise self._error(rc, source)

    # --- receiving ------------------------------------------------------

    def _take(self, msg: _native.Msg) -> Optional[Message]:
        """One message if one is ready, without waiting (under the lock)."""
        rc = lib.ipcnet_recv(self._handle(), ctypes.byref(msg), 0)
        if rc == 0:
            return Message._from_c(msg)
        if rc in (-_errno.EAGAIN, -_errno.ETIMEDOUT):
            return None
        raise self._error(rc)

    def recv(self, timeout: Optional[float] = None) -> Optional[Message]:
        """Waits up to timeout seconds (None: for ever, 0: not at all) for
        a message and returns it, or None if none came. A nonblocking
        client never waits. Raises ConnectionLost when the node went away
        (without reconnect=True)."""
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be None or >= 0")
        if self._pending:
            return self._pending.popleft()
        deadline = None if timeout is None else time.monotonic() + timeout
        m = _native.Msg()
        wake = -1       # our eventfd, made the first time we wait
        try:
            while True:
                with self._lock:
                    if self._pending:       # another thread's dispatch() left it
                        return self._pending.popleft()
                    msg = self._take(m)
                    if msg is not None:
                        if self._wakers:
                            self._done()    # more may wait in the buffer now
                        return msg
                    if self._nonblock:
                        return None
                    left = -1.0 if deadline is None else deadline - time.monotonic()
                    if deadline is not None and left <= 0:
                        return None
                    fd = lib.ipcnet_fd(self._h)
                    events = select.POLLIN
                    # ipcnet_want_write() also keeps a reconnecting handle's
                    # descriptor told whether to wake for writing.
                    if lib.ipcnet_want_write(self._h) and not self._reconnect:
                        events |= select.POLLOUT
                    if wake < 0:
                        wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
                        self._wakers.add(wake)
                    else:
                        try:
                            os.eventfd_read(wake)
                        except BlockingIOError:
                            pass
                p = select.poll()
                p.register(fd, events)
                p.register(wake, select.POLLIN)
                # Waits here, out of the library and without the lock, so
                # that other threads may use the client; Ctrl-C interrupts it.
                p.poll(None if left < 0 else max(1, int(left * 1000 + 0.999)))
        finally:
            if wake >= 0:
                with self._lock:
                    self._wakers.discard(wake)
                os.close(wake)

    def __iter__(self) -> Iterator[Message]:
        """Messages as they come (for ever; a nonblocking client: those
        ready now)."""
        while True:
            msg = self.recv()
            if msg is None:
                return
            yield msg

    def dispatch(self, fn: Handler) -> int:
        """Reads what is ready without waiting, writes what is queued, and
        calls fn(msg) for each message; returns how many. For event loops:
        call it when fileno() is ready. If fn raises, the messages after
        are kept for the next recv() or dispatch()."""
        msgs = []
        # Each message is copied in the callback, while it is valid; fn is
        # called after, out of the library, free to use the client.
        take = _native.HANDLER(lambda c, m, arg: msgs.append(Message._from_c(m.contents)))
        with self._using() as h:
            msgs.extend(self._pending)
            self._pending.clear()
            rc = lib.ipcnet_dispatch(h, take, None)
            err = self._error(rc) if rc < 0 else None
        for i, msg in enumerate(msgs):
            try:
                fn(msg)
            except BaseException:
                with self._lock:
                    self._pending.extendleft(reversed(msgs[i + 1:]))
                raise
        if err is not None:
            raise err
        return len(msgs)

    # --- listings -------------------------------------------------------

    def query(self, what: Union[Query, int]) -> str:
        """The node's listing as text: a record a line, fields separated
        by tabs (see the query_*() methods for them parsed)."""
        text = ctypes.c_void_p()
        with self._using() as h:
            rc = lib.ipcnet_query(h, int(what), ctypes.byref(text))
            if rc < 0:
                raise self._error(rc)
        try:
            return ctypes.string_at(text).decode("utf-8", "surrogateescape")
        finally:
            _native.free(text)

    def diagnose(self, peer: str) -> str:
        """What the node knows of a peer (its name, id or address) and why
        it is not up, step by step, as lines of text."""
        text = ctypes.c_void_p()
        with self._using() as h:
            rc = lib.ipcnet_diagnose(h, _name(peer, "peer"), ctypes.byref(text))
            if rc < 0:
                raise self._error(rc, peer)
        try:
            return ctypes.string_at(text).decode("utf-8", "surrogateescape")
        finally:
            _native.free(text)

    # --- the shared store (docs/store.md) ---------------------------------

    def put(self, key: str, value: Optional[Payload] = b"", ttl: Optional[float] = None,
            ephemeral: bool = False, expected_version: Optional[int] = None) -> int:
        """Puts value under key on every node; returns the new version.
        ttl: seconds it lives (None: for ever); ephemeral: deleted when
        this client closes or its node is lost; expected_version: only if
        the key's version is that (0: only if there is none), else
        VersionMismatch: compare-and-set, as strong as docs/store.md says."""
        b = _name(key, "key")
        buf, n = _payload(value)
        ttl_ms = 0 if ttl is None else max(1, int(ttl * 1000))
        flags = ((_native.EPHEMERAL if ephemeral else 0)
                 | (_native.IF if expected_version is not None else 0))
        version = ctypes.c_uint64()
        with self._using() as h:
            rc = lib.ipcnet_put_full(h, b, buf, n, ttl_ms, flags, expected_version or 0,
                                     ctypes.byref(version))
            if rc < 0:
                raise self._error(rc, key)
        return version.value

    def get(self, key: str, timeout: Optional[float] = None) -> Message:
        """The key's value: a KEY Message with ``data`` and ``version``.
        NoSuchKey if there is none."""
        b = _name(key, "key")
        m = _native.Msg()
        with self._using() as h:
            rc = lib.ipcnet_get(h, b, ctypes.byref(m), _ms(timeout, 0))
            if rc < 0:
                raise self._key_error(rc, key)
            return Message._from_c(m)

    def delete(self, key: str) -> None:
        """Deletes key everywhere. NoSuchKey if it was not there."""
        with self._using() as h:
            rc = lib.ipcnet_del(h, _name(key, "key"))
            if rc < 0:
                raise self._key_error(rc, key)

    def keys(self, pattern: str = "*") -> list[tuple[str, int, int]]:
        """The keys matching pattern ("*", "prefix.*" or a key), as
        (key, version, size of the value), in no particular order."""
        text = ctypes.c_void_p()
        with self._using() as h:
            rc = lib.ipcnet_keys(h, _name(pattern, "pattern"), ctypes.byref(text))
            if rc < 0:
                raise self._error(rc, pattern)
        try:
            lines = ctypes.string_at(text).decode("utf-8", "surrogateescape").splitlines()
        finally:
            _native.free(text)
        out = []
        for line in lines:
            k, version, size = line.split("\t")[:3]
            out.append((k, int(version), int(size)))
        return out

    def watch_keys(self, pattern: str) -> None:
        """KEY messages for the keys matching pattern: a PUT for each key
        there now, then a PUT or DEL for each change, on any node."""
        self._hold(lib.ipcnet_watch_keys, pattern)

    def unwatch_keys(self, pattern: str) -> None:
        """Takes back a pattern given to watch_keys()."""
        self._hold(lib.ipcnet_unwatch_keys, pattern)

    def _key_error(self, rc: int, key: str) -> errors.IpcnetError:
        if rc == -_errno.ENOENT:
            return errors.NoSuchKey(_errno.ENOENT, f"no such key: {key}", key)
        return self._error(rc, key)

    def monitor(self, pattern: Optional[str] = None) -> None:
        """See every message the node routes to names matching pattern
        (None: all), as MONITOR messages: ``event`` is the Kind routed,
        ``name`` where to, ``data`` its first bytes, ``total`` its size."""
        with self._using() as h:
            rc = lib.ipcnet_monitor(h, _name(pattern, "pattern") if pattern else None)
            if rc < 0:
                raise self._error(rc, pattern)

    @property
    def pending(self) -> bool:
        """Messages read already, waiting in the library (the descriptor
        does not tell of them)."""
        with self._using() as h:
            return bool(lib.ipcnet_pending(h))

    def _rows(self, what: Query, fields: tuple[str, ...]) -> list[dict[str, Any]]:
        rows = []
        for line in self.query(what).splitlines():
            if not line:
                continue
            values = line.split("\t")
            row: dict[str, Any] = dict(zip(fields, values))
            for i, v in enumerate(values[len(fields):], len(fields)):
                row[f"field{i}"] = v        # a field newer than this package
            rows.append(row)
        return rows

    def query_services(self) -> list[dict[str, Any]]:
        """Who holds what: dicts of name, node, holder (address), label,
        user; None where the node has none ("-": no label, or a remote
        holder, whose node tells only that it holds the name)."""
        rows = self._rows(Query.SERVICES, ("name", "node", "holder", "label", "user"))
        for r in rows:
            for k in ("holder", "label", "user"):
                if r.get(k) == "-":
                    r[k] = None
        return rows

    def query_peers(self) -> list[dict[str, Any]]:
        """The nodes known, this one first: dicts of name, id, address,
        source (every way it is known, comma-separated), state, rtt_us
        (int), last_seen_ms (int), key, reason (why it is not up; None)."""
        rows = self._rows(Query.PEERS, ("name", "id", "address", "source", "state",
                                        "rtt_us", "last_seen_ms", "key", "reason"))
        for r in rows:
            for k in ("rtt_us", "last_seen_ms"):
                r[k] = _int(r.get(k))
            if r.get("reason") == "-":
                r["reason"] = None
        return rows

    def query_stats(self) -> dict[str, Union[int, str]]:
        """The node's counters and settings: {key: value}, numbers as int."""
        stats: dict[str, Union[int, str]] = {}
        for line in self.query(Query.STATS).splitlines():
            key, _, value = line.partition("\t")
            if key:
                n = _int(value)
                stats[key] = value if n is None else n
        return stats

    def query_clients(self) -> list[dict[str, Any]]:
        """The node's clients: dicts of address, label (None: none), pid
        (None: another user's), uid, queued (bytes), user."""
        rows = self._rows(Query.CLIENTS, ("address", "label", "pid", "uid", "queued", "user"))
        for r in rows:
            if r.get("label") == "-":
                r["label"] = None
            for k in ("pid", "uid", "queued"):
                r[k] = _int(r.get(k))
        return rows


def _int(v: Optional[str]) -> Optional[int]:
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None
