"""ipcnet for asyncio: the same client, awaited.

::

    from ipcnet import aio

    async with aio.connect(label="worker") as c:
        await c.bind("jobs")
        async for msg in c:
            if msg.kind == ipcnet.Kind.REQUEST:
                await c.reply(msg, b"done")

    reply = await c.request("jobs", b"run", timeout=5)

The client underneath is nonblocking and its descriptor is watched with
loop.add_reader() (and add_writer() while data is queued), so recv(),
request() and sends that wait for room wait in the loop, not in the
library. Messages are read only while a task waits for one (or for a
reply), so a slow consumer slows its senders down, as in C.

Calls that wait for the node's answer in the library (bind, subscribe,
watch and their undoing, query_*, a send with confirm=True) are a round
trip to the local node made inline, in the loop's thread; the C library
has no asynchronous form of them.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import time
from collections import deque
from typing import Any, AsyncIterator, Generator, Optional, Union

from . import _client, errors
from ._client import Kind, Message, Payload, PathLike

__all__ = ["connect", "Client"]

_CONTROL_WAIT = 30.0        # the library's wait for a node that is away (s)


class Client:
    """An asyncio client; get one with ``await aio.connect(...)`` (or
    ``async with aio.connect(...) as c``). Use it from one event loop."""

    def __init__(self, client: _client.Client, loop: Optional[asyncio.AbstractEventLoop] = None):
        if not client.nonblock:
            raise ValueError("aio.Client needs a client made with nonblock=True")
        self._c = client
        self._loop = loop or asyncio.get_running_loop()
        self._fd = client.fileno()
        self._inbox: deque[Message] = deque()
        self._getters: deque[asyncio.Future[Optional[Message]]] = deque()
        self._replies: dict[int, asyncio.Future[Message]] = {}
        self._abandoned: set[int] = set()      # ids whose reply nobody awaits now
        self._writers: list[asyncio.Future[None]] = []
        self._reading = self._writing = False
        self._kicked = False
        self._exc: Optional[BaseException] = None

    # --- the descriptor ---------------------------------------------------

    def _update(self) -> None:
        """Watches the descriptor for what is awaited now, and no more."""
        if self._c.closed:
            return
        queued = self._c.want_write     # also keeps a reconnecting fd told
        reconnect = self._c.reconnect
        read = bool(self._getters or self._replies or (reconnect and (self._writers or queued)))
        write = not reconnect and bool(self._writers or queued)
        if read != self._reading:
            if read:
                self._loop.add_reader(self._fd, self._on_ready)
            else:
                self._loop.remove_reader(self._fd)
            self._reading = read
        if write != self._writing:
            if write:
                self._loop.add_writer(self._fd, self._on_ready)
            else:
                self._loop.remove_writer(self._fd)
            self._writing = write

    def _on_ready(self) -> None:
        self._kicked = False
        if self._c.closed:
            return
        if self._c.want_write:
            try:
                self._c.flush(0)
            except errors.TimedOut:
                pass                    # the rest when there is room
            except errors.IpcnetError as e:
                if not self._c.reconnect:
                    self._fail(e)
                    return
        writers, self._writers = self._writers, []
        for w in writers:
            if not w.done():
                w.set_result(None)
        # A reconnecting client's descriptor stays readable until what woke
        # it (a frame, the timer of the next try) is taken: always take.
        if self._getters or self._replies or self._c.reconnect:
            self._pump(always=self._c.reconnect)
        self._update()

    def _kick(self) -> None:
        """After a call that may have read frames into the library's buffer
        (the descriptor does not say so): look at them soon."""
        if not self._kicked and (self._getters or self._replies):
            self._kicked = True
            self._loop.call_soon(self._on_ready)

    def _pump(self, limit: int = 256, always: bool = False) -> None:
        """Takes what is ready and gives it to who waits for it (always:
        into the inbox if nobody does)."""
        for _ in range(limit):
            try:
                msg = self._c.recv(0)
            except errors.IpcnetError as e:
                self._fail(e)
                return
            if msg is None:
                return
            self._route(msg)
            if not (always or self._getters or self._replies):
                return
        self._kick()        # more may be there: after other tasks had a turn

    def _route(self, msg: Message) -> None:
        if self._to_request(msg):
            return
        while self._getters:
            g = self._getters.popleft()
            if not g.done():
                g.set_result(msg)
                return
        self._inbox.append(msg)

    def _to_request(self, msg: Message) -> bool:
        """Gives a reply (or the error replacing it) to its request; True
        if msg was one."""
        if msg.kind not in (Kind.REPLY, Kind.ERROR):
            return False
        fut = self._replies.pop(msg.id, None)
        if fut is not None:
            if not fut.done():
                fut.set_result(msg)
            return True
        if msg.id in self._abandoned:
            self._abandoned.discard(msg.id)
            return True
        return False

    def _fail(self, exc: BaseException) -> None:
        """The connection is dead: every waiter gets exc, and so will later
        calls."""
        self._exc = exc
        for fut in [*self._getters, *self._replies.values(), *self._writers]:
            if not fut.done():
                fut.set_exception(exc)
        self._getters.clear()
        self._replies.clear()
        self._writers.clear()
        self._unwatch()

    def _unwatch(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False
        if self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False

    def _check(self) -> None:
        if self._exc is not None:
            raise self._exc
        if self._c.closed:
            raise errors.closed()

    async def _room(self, deadline: Optional[float]) -> None:
        """Waits until the descriptor may take more (or the deadline)."""
        fut: asyncio.Future[None] = self._loop.create_future()
        self._writers.append(fut)
        self._update()
        try:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            await asyncio.wait_for(fut, left)
        except asyncio.TimeoutError:
            pass
        finally:
            if fut in self._writers:
                self._writers.remove(fut)

    async def _retry(self, call: Any, *, room_deadline: Optional[float] = None) -> Any:
        """call() until it neither would block nor finds the node away (a
        reconnecting client waits for it up to 30 s, as the library does)."""
        away_until: Optional[float] = None
        while True:
            self._check()
            try:
                rv = call()
                break
            except errors.WouldBlock:
                await self._room(room_deadline)
            except errors.NotConnected:
                now = time.monotonic()
                if away_until is None:
                    away_until = now + _CONTROL_WAIT
                if not self._c.reconnect or now >= away_until:
                    raise
                await asyncio.sleep(0.05)   # each try lets the library try to connect
        self._kick()
        self._update()
        return rv

    # --- the connection ---------------------------------------------------

    @property
    def client(self) -> _client.Client:
        """The (nonblocking) ipcnet.Client underneath."""
        return self._c

    @property
    def address(self) -> str:
        """This client's unique address, ":N@node"."""
        return self._c.address

    @property
    def node(self) -> str:
        """The name of the node it is connected to."""
        return self._c.node

    @property
    def max_message(self) -> int:
        """The largest payload the node accepts, in bytes."""
        return self._c.max_message

    @property
    def last_id(self) -> int:
        """The sequence number of the last send, publish or request."""
        return self._c.last_id

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._c.closed

    def fileno(self) -> int:
        """The library's descriptor (watched by this client already)."""
        return self._fd

    def close(self) -> None:
        """Closes the connection; tasks waiting on it get ClientClosed
        (an ``async for`` over it ends)."""
        if self._c.closed:
            return
        self._unwatch()
        exc = errors.closed()
        for fut in [*self._getters, *self._replies.values(), *self._writers]:
            if not fut.done():
                fut.set_exception(exc)
        self._getters.clear()
        self._replies.clear()
        self._writers.clear()
        self._c.close()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ipcnet.aio.Client of {self._c!r}>"

    # --- names, topics, watches -------------------------------------------

    async def bind(self, name: str) -> None:
        """Holds a service name (see ipcnet.Client.bind)."""
        await self._retry(functools.partial(self._c.bind, name))

    async def unbind(self, name: str) -> None:
        """Gives a name back."""
        await self._retry(functools.partial(self._c.unbind, name))

    async def subscribe(self, pattern: str) -> None:
        """Subscribes to topics: "sensors.temp", "sensors.*" or "*"."""
        await self._retry(functools.partial(self._c.subscribe, pattern))

    async def unsubscribe(self, pattern: str) -> None:
        """Takes back a pattern given to subscribe()."""
        await self._retry(functools.partial(self._c.unsubscribe, pattern))

    async def watch(self, pattern: str) -> None:
        """Watches names matching pattern (NAME_UP / NAME_DOWN events)."""
        await self._retry(functools.partial(self._c.watch, pattern))

    async def unwatch(self, pattern: str) -> None:
        """Stops watching a pattern."""
        await self._retry(functools.partial(self._c.unwatch, pattern))

    # --- sending ----------------------------------------------------------

    async def send(self, dest: str, data: Optional[Payload] = b"", *, confirm: bool = False,
                   more: bool = False) -> int:
        """Sends data to dest, waiting in the loop for room; returns the
        sequence number (see ipcnet.Client.send). confirm=True waits for
        the node's answer inline."""
        return await self._retry(functools.partial(self._c.send, dest, data,
                                                   confirm=confirm, more=more))

    async def publish(self, topic: str, data: Optional[Payload] = b"", *,
                      confirm: bool = False, more: bool = False) -> int:
        """Publishes data on topic, waiting in the loop for room."""
        return await self._retry(functools.partial(self._c.publish, topic, data,
                                                   confirm=confirm, more=more))

    async def flush(self, timeout: Optional[float] = None) -> None:
        """Writes everything queued, waiting in the loop up to timeout
        seconds (None: as long as it takes). TimedOut if it could not."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._check()
            try:
                self._c.flush(0)
                self._kick()
                return
            except errors.TimedOut:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                await self._room(deadline)

    # --- requests ---------------------------------------------------------

    async def request(self, dest: str, data: Optional[Payload] = b"",
                      timeout: Optional[float] = None) -> Message:
        """Sends a request and awaits its reply, at most timeout seconds
        (None: the node's default). Raises as ipcnet.Client.request does;
        cancelling it drops the reply when it comes."""
        rid = await self.request_async(dest, data, timeout)
        fut: asyncio.Future[Message] = self._loop.create_future()
        self._replies[rid] = fut
        self._update()
        self._kick()        # the reply may be in the library's buffer already
        # The node answers at the timeout; wait a little longer than it.
        guard = (timeout if timeout else _CONTROL_WAIT) + 1.0
        try:
            msg = await asyncio.wait_for(fut, guard)
        except asyncio.TimeoutError:
            self._abandoned.add(rid)
            raise errors.make(errno.ETIMEDOUT, "no answer from the node", dest) from None
        except asyncio.CancelledError:
            self._abandoned.add(rid)
            raise
        finally:
            self._replies.pop(rid, None)
            self._update()
        if msg.kind == Kind.ERROR:
            raise errors.make(msg.error, msg.text, dest)
        return msg

    async def request_async(self, dest: str, data: Optional[Payload] = b"",
                            timeout: Optional[float] = None) -> int:
        """Sends a request; its reply comes through recv() with msg.id."""
        return await self._retry(functools.partial(self._c.request_async, dest, data, timeout))

    async def reply(self, request: Message, data: Optional[Payload] = b"") -> None:
        """Answers a REQUEST message."""
        await self._retry(functools.partial(self._c.reply, request, data))

    async def reply_to(self, source: str, id: int, data: Optional[Payload] = b"") -> None:
        """Answers the request id of the client at address source."""
        await self._retry(functools.partial(self._c.reply_to, source, id, data))

    # --- receiving --------------------------------------------------------

    async def recv(self, timeout: Optional[float] = None) -> Optional[Message]:
        """Awaits the next message, at most timeout seconds (None: for
        ever); None if none came."""
        self._check()
        if not self._inbox and not self._getters:
            # What is ready now, without a turn of the loop.
            while True:
                try:
                    msg = self._c.recv(0)
                except errors.IpcnetError as e:
                    self._fail(e)
                    raise
                if msg is None:
                    break
                if not self._to_request(msg):
                    return msg
        if self._inbox and not self._getters:
            return self._inbox.popleft()
        fut: asyncio.Future[Optional[Message]] = self._loop.create_future()
        self._getters.append(fut)
        self._update()
        timer = None
        if timeout is not None:
            timer = self._loop.call_later(timeout, lambda: fut.done() or fut.set_result(None))
        try:
            return await fut
        except asyncio.CancelledError:
            # Cancelled just after a message came: keep it for the next.
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                msg = fut.result()
                if msg is not None:
                    self._inbox.appendleft(msg)
            raise
        finally:
            if timer is not None:
                timer.cancel()
            try:
                self._getters.remove(fut)
            except ValueError:
                pass
            self._update()

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        try:
            msg = await self.recv()
        except errors.ClientClosed:
            raise StopAsyncIteration from None
        assert msg is not None
        return msg

    # --- the shared store ---------------------------------------------------

    async def put(self, key: str, value: Optional[Payload] = b"", *,
                  ttl: Optional[float] = None, ephemeral: bool = False,
                  expected_version: Optional[int] = None) -> int:
        """Puts a value under key; the new version (see ipcnet.Client.put)."""
        return await self._retry(functools.partial(self._c.put, key, value, ttl, ephemeral,
                                                   expected_version))

    async def get(self, key: str, timeout: Optional[float] = None) -> Message:
        """The key's value (see ipcnet.Client.get)."""
        return await self._retry(functools.partial(self._c.get, key, timeout))

    async def delete(self, key: str) -> None:
        """Deletes key (see ipcnet.Client.delete)."""
        await self._retry(functools.partial(self._c.delete, key))

    async def keys(self, pattern: str = "*") -> list[tuple[str, int, int]]:
        """(key, version, size) of the keys matching pattern."""
        return await self._retry(functools.partial(self._c.keys, pattern))

    async def watch_keys(self, pattern: str) -> None:
        """KEY messages for the keys matching pattern."""
        await self._retry(functools.partial(self._c.watch_keys, pattern))

    async def unwatch_keys(self, pattern: str) -> None:
        """Takes back a pattern given to watch_keys()."""
        await self._retry(functools.partial(self._c.unwatch_keys, pattern))

    # --- listings ---------------------------------------------------------

    async def query(self, what: Union[_client.Query, int]) -> str:
        """The node's listing as text (see ipcnet.Client.query)."""
        return await self._retry(functools.partial(self._c.query, what))

    async def query_services(self) -> list[dict[str, Any]]:
        """Who holds what (see ipcnet.Client.query_services)."""
        return await self._retry(self._c.query_services)

    async def query_peers(self) -> list[dict[str, Any]]:
        """The nodes known, this one first."""
        return await self._retry(self._c.query_peers)

    async def query_stats(self) -> dict[str, Union[int, str]]:
        """The node's counters and settings."""
        return await self._retry(self._c.query_stats)

    async def query_clients(self) -> list[dict[str, Any]]:
        """The node's clients."""
        return await self._retry(self._c.query_clients)


class _Connecting:
    """What connect() returns: await it, or use it with ``async with``."""

    def __init__(self, path: Optional[PathLike], label: Optional[str], reconnect: bool):
        self._args = (path, label, reconnect)
        self._client: Optional[Client] = None

    async def _connect(self) -> Client:
        path, label, reconnect = self._args
        loop = asyncio.get_running_loop()
        # The library waits for the node's welcome: not in the loop's thread.
        c = await loop.run_in_executor(None, functools.partial(
            _client.connect, path, label, reconnect=reconnect, nonblock=True))
        return Client(c, loop)

    def __await__(self) -> Generator[Any, None, Client]:
        return self._connect().__await__()

    async def __aenter__(self) -> Client:
        self._client = await self._connect()
        return self._client

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()


def connect(path: Optional[PathLike] = None, label: Optional[str] = None,
            reconnect: bool = False) -> _Connecting:
    """Connects to the local node (see ipcnet.connect); the client is
    nonblocking. ``c = await aio.connect()`` or ``async with aio.connect()
    as c``."""
    return _Connecting(path, label, reconnect)

