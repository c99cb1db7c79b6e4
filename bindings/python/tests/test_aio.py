"""ipcnet.aio against a real node: awaited recv and requests, async
iteration, back-pressure in the loop, cancellation, reconnection."""

from __future__ import annotations

import asyncio
import errno
import unittest

import ipcnet
from ipcnet import Event, Kind, aio

from nodes import QUIET_S, START_S, WAIT_S, Node


class AioTest(unittest.IsolatedAsyncioTestCase):
    node: Node

    @classmethod
    def setUpClass(cls) -> None:
        cls.node = Node("pyaio").start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.node.cleanup()

    async def client(self, label: str | None = None, **kw: bool) -> aio.Client:
        c = await aio.connect(self.node.sock, label, **kw)
        self.addCleanup(c.close)
        return c

    async def serve(self, name: str, count: int | None = None) -> asyncio.Task[None]:
        """A task holding name, answering requests with the data upper-cased."""
        h = await self.client("aio-server")
        await h.bind(name)

        async def run() -> None:
            n = 0
            async for m in h:
                if m.kind == Kind.REQUEST:
                    await h.reply(m, m.data.upper())
                    n += 1
                    if count is not None and n == count:
                        return

        task = asyncio.create_task(run())
        self.addCleanup(task.cancel)
        return task

    async def test_connect_recv_and_properties(self) -> None:
        async with aio.connect(self.node.sock, "aio-props") as c:
            self.assertRegex(c.address, r"^:\d+@pyaio$")
            self.assertEqual(c.node, "pyaio")
            self.assertGreater(c.max_message, 0)
            self.assertTrue(c.client.nonblock)
            self.assertGreaterEqual(c.fileno(), 0)
            await c.bind("aio.props")
            with self.node.connect() as s:
                s.send("aio.props", b"to a coroutine")
            m = await asyncio.wait_for(c.recv(), WAIT_S)
            self.assertEqual((m.kind, m.name, m.data), (Kind.SEND, "aio.props",
                                                        b"to a coroutine"))
            self.assertIsNone(await c.recv(timeout=QUIET_S))
        self.assertTrue(c.closed)
        with self.assertRaises(ipcnet.NoNode):
            await aio.connect(self.node.sock + ".nobody")

    async def test_request(self) -> None:
        await self.serve("aio.upper")
        c = await self.client()
        r = await c.request("aio.upper", "hello", timeout=WAIT_S)
        self.assertEqual((r.kind, r.data, r.node), (Kind.REPLY, b"HELLO", "pyaio"))

    async def test_many_requests_at_once(self) -> None:
        await self.serve("aio.many")
        c = await self.client()
        words = [f"word{i}" for i in range(200)]
        replies = await asyncio.wait_for(asyncio.gather(
            *(c.request("aio.many", w, timeout=WAIT_S) for w in words)), WAIT_S * 2)
        self.assertEqual([r.text for r in replies], [w.upper() for w in words])

    async def test_request_errors(self) -> None:
        c = await self.client()
        with self.assertRaises(ipcnet.NoSuchName) as cm:
            await c.request("aio.nobody", b"?", timeout=WAIT_S)
        self.assertEqual(cm.exception.errno, errno.ENOENT)
        self.assertEqual(cm.exception.filename, "aio.nobody")
        self.assertTrue(cm.exception.node_words)
        mute = await self.client("mute")
        await mute.bind("aio.mute")
        with self.assertRaises(ipcnet.TimedOut) as cm2:
            await c.request("aio.mute", b"?", timeout=0.3)
        self.assertIsInstance(cm2.exception, TimeoutError)
        with self.assertRaises(ipcnet.NameExists):
            await mute.bind("aio.mute")

    async def test_cancelled_request_leaves_no_stray_reply(self) -> None:
        h = await self.client()
        await h.bind("aio.slow")
        c = await self.client()
        task = asyncio.create_task(c.request("aio.slow", b"late", timeout=WAIT_S))
        req = await asyncio.wait_for(h.recv(), WAIT_S)
        task.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await task
        await h.reply(req, b"too late")
        with self.client_sync() as s:
            s.send(c.address, b"next")
        m = await asyncio.wait_for(c.recv(), WAIT_S)
        self.assertEqual((m.kind, m.data), (Kind.SEND, b"next"))   # not the late reply

    def client_sync(self) -> ipcnet.Client:
        return self.node.connect("sync")

    async def test_async_iteration_ends_on_close(self) -> None:
        c = await self.client()
        await c.subscribe("aio.topic.*")
        got: list[bytes] = []

        async def consume() -> None:
            async for m in c:
                got.append(m.data)

        task = asyncio.create_task(consume())
        with self.client_sync() as p:
            for i in range(3):
                p.publish("aio.topic.x", str(i))
        for _ in range(int(WAIT_S / 0.01)):
            if len(got) == 3:
                break
            await asyncio.sleep(0.01)
        c.close()
        await asyncio.wait_for(task, WAIT_S)     # ended, not raised
        self.assertEqual(got, [b"0", b"1", b"2"])

    async def test_back_pressure_waits_in_the_loop(self) -> None:
        r = await self.client("slow-reader")
        await r.bind("aio.flood")
        s = await self.client("flooder")
        chunk = bytes(64 * 1024)
        n = 400                                 # 25 MiB: more than every queue holds

        async def send_all() -> None:
            for i in range(n):
                await s.send("aio.flood", i.to_bytes(4, "big") + chunk)

        sender = asyncio.create_task(send_all())
        await asyncio.sleep(0.3)
        self.assertFalse(sender.done())         # it waits for room, in the loop
        seen = []
        for _ in range(n):
            m = await asyncio.wait_for(r.recv(), WAIT_S)
            seen.append(int.from_bytes(m.data[:4], "big"))
        await asyncio.wait_for(sender, WAIT_S)
        self.assertEqual(seen, list(range(n)))

    async def test_more_and_flush(self) -> None:
        r = await self.client()
        await r.bind("aio.batch")
        s = await self.client()
        for i in range(50):
            await s.send("aio.batch", str(i), more=True)
        await s.flush(WAIT_S)
        self.assertEqual([(await asyncio.wait_for(r.recv(), WAIT_S)).text for _ in range(50)],
                         [str(i) for i in range(50)])

    async def test_cancelled_recv_loses_nothing(self) -> None:
        c = await self.client()
        await c.bind("aio.cancel")
        waiter = asyncio.create_task(c.recv())
        await asyncio.sleep(0.05)
        waiter.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await waiter
        with self.client_sync() as s:
            s.send("aio.cancel", b"kept")
        m = await asyncio.wait_for(c.recv(), WAIT_S)
        self.assertEqual(m.data, b"kept")

    async def test_watch_and_listings(self) -> None:
        w = await self.client("watcher")
        await w.watch("aio.w.*")
        h = await self.client()
        await h.bind("aio.w.one")
        m = await asyncio.wait_for(w.recv(), WAIT_S)
        self.assertEqual((m.kind, m.event, m.name), (Kind.EVENT, Event.NAME_UP, "aio.w.one"))
        self.assertIn("aio.w.one", [r["name"] for r in await w.query_services()])
        self.assertEqual((await w.query_stats())["node"], "pyaio")
        self.assertIn(w.address, [r["address"] for r in await w.query_clients()])
        self.assertEqual((await w.query_peers())[0]["source"], "self")
        await w.unwatch("aio.w.*")
        await h.unbind("aio.w.one")
        self.assertIsNone(await w.recv(timeout=QUIET_S))


class AioReconnectTest(unittest.IsolatedAsyncioTestCase):
    async def test_node_down_node_up(self) -> None:
        node = Node("pyaiophoenix").start()
        self.addCleanup(node.cleanup)
        c = await aio.connect(node.sock, "aio-survivor", reconnect=True)
        self.addCleanup(c.close)
        await c.bind("aio.r.svc")
        node.crash()
        m = await asyncio.wait_for(c.recv(), WAIT_S)
        self.assertEqual((m.kind, m.event), (Kind.EVENT, Event.NODE_DOWN))
        node.start()
        m = await asyncio.wait_for(c.recv(), START_S + 10)
        self.assertEqual((m.kind, m.event), (Kind.EVENT, Event.NODE_UP))
        self.assertGreater(m.gap_ms, 0)
        with node.connect() as s:
            s.send("aio.r.svc", b"held again", confirm=True)
        m = await asyncio.wait_for(c.recv(), WAIT_S)
        self.assertEqual(m.data, b"held again")

    async def test_without_reconnect_recv_raises(self) -> None:
        node = Node("pyaiomortal").start()
        self.addCleanup(node.cleanup)
        c = await aio.connect(node.sock)
        self.addCleanup(c.close)
        waiter = asyncio.create_task(c.recv())
        await asyncio.sleep(0.05)
        node.crash()
        with self.assertRaises(ipcnet.ConnectionLost):
            await asyncio.wait_for(waiter, WAIT_S)
        with self.assertRaises(ipcnet.ConnectionLost):
            await c.recv()


if __name__ == "__main__":
    unittest.main()
