"""ipcnet.Client against one real node: every call, the messages' fields,
the errors and their words."""

from __future__ import annotations

import dataclasses
import errno
import os
import pwd
import re
import selectors
import threading
import time
import unittest

import ipcnet
from ipcnet import Event, Kind

from nodes import QUIET_S, WAIT_S, Node, recv, recv_kind, until

POLICY = "deny bind secret\nallow bind printer\n"


class NodeTest(unittest.TestCase):
    """One node for the class (with a policy that denies binding
    "secret"); clients closed after each test."""

    node: Node

    @classmethod
    def setUpClass(cls) -> None:
        cls.node = Node("pyalpha")
        cls.policy = os.path.join(cls.node.dir, "policy")
        with open(cls.policy, "w") as f:
            f.write(POLICY)
        cls.node.start(["--policy", cls.policy])

    @classmethod
    def tearDownClass(cls) -> None:
        cls.node.cleanup()

    def client(self, label: str | None = None, **kw: bool) -> ipcnet.Client:
        c = self.node.connect(label, **kw)
        self.addCleanup(c.close)
        return c


class TestConnect(NodeTest):
    def test_connect_and_what_the_node_said(self) -> None:
        with ipcnet.connect(self.node.sock, label="props") as c:
            self.assertRegex(c.address, r"^:\d+@pyalpha$")
            self.assertEqual(c.node, "pyalpha")
            self.assertEqual(c.path, self.node.sock)
            self.assertEqual(c.label, "props")
            self.assertEqual(c.max_message, c.query_stats()["max_message"])
            self.assertGreaterEqual(c.fileno(), 0)
            self.assertFalse(c.want_write)
            self.assertFalse(c.reconnect)
            self.assertFalse(c.nonblock)
            self.assertIn(c.address, repr(c))
            row = [r for r in c.query_clients() if r["address"] == c.address]
            self.assertEqual(len(row), 1)
            self.assertEqual(row[0]["label"], "props")
        self.assertTrue(c.closed)
        self.assertIn("closed", repr(c))
        c.close()       # twice is harmless

    def test_default_socket_from_the_environment(self) -> None:
        old = os.environ.get("IPCNET_SOCKET")
        os.environ["IPCNET_SOCKET"] = self.node.sock
        try:
            self.assertEqual(ipcnet.default_socket(), self.node.sock)
            with ipcnet.connect() as c:
                self.assertEqual(c.node, "pyalpha")
                self.assertEqual(c.path, self.node.sock)
        finally:
            if old is None:
                del os.environ["IPCNET_SOCKET"]
            else:
                os.environ["IPCNET_SOCKET"] = old

    def test_no_node_there(self) -> None:
        path = os.path.join(self.node.dir, "nobody.sock")
        with self.assertRaises(ipcnet.NoNode) as cm:
            ipcnet.connect(path)
        e = cm.exception
        self.assertIsInstance(e, ConnectionError)
        self.assertIsInstance(e, ipcnet.IpcnetError)
        self.assertEqual(e.errno, errno.ENOENT)
        self.assertEqual(e.filename, path)
        # Not ipcnet_strerror(-ENOENT)'s "no such name": there is no name here.
        self.assertNotIn("name", str(e))
        self.assertIn("No such file or directory", str(e))

    def test_closed_client(self) -> None:
        c = self.node.connect()
        c.close()
        for call in (lambda: c.send("x", b""), lambda: c.recv(0), lambda: c.bind("x"),
                     lambda: c.address, c.fileno, c.query_stats):
            with self.assertRaises(ipcnet.ClientClosed) as cm:
                call()
            self.assertIsInstance(cm.exception, ValueError)
            self.assertEqual(cm.exception.errno, errno.EBADF)


class TestNames(NodeTest):
    def test_bind_unbind_and_their_errors(self) -> None:
        c = self.client("binder")
        c.bind("svc.names")
        self.assertIn(("svc.names", c.address, "binder"),
                      [(r["name"], r["holder"], r["label"]) for r in c.query_services()])
        with self.assertRaises(ipcnet.NameExists) as cm:
            c.bind("svc.names")
        self.assertEqual(cm.exception.errno, errno.EEXIST)
        self.assertEqual(cm.exception.filename, "svc.names")
        c.unbind("svc.names")
        self.assertNotIn("svc.names", [r["name"] for r in c.query_services()])
        with self.assertRaises(ipcnet.NoSuchName) as cm2:
            c.unbind("svc.names")
        self.assertEqual(cm2.exception.errno, errno.ENOENT)
        self.assertTrue(cm2.exception.node_words)

    def test_bad_names(self) -> None:
        c = self.client()
        with self.assertRaises(ipcnet.InvalidArgument) as cm:
            c.bind("")                  # refused by the library
        self.assertIsInstance(cm.exception, ValueError)
        with self.assertRaises(ipcnet.InvalidArgument) as cm:
            c.bind("-starts-with-a-dash")  # refused by the node, in its words
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        self.assertTrue(cm.exception.node_words)
        self.assertIn(cm.exception.node_words, str(cm.exception))
        with self.assertRaises(ipcnet.InvalidArgument):
            c.bind("nul\0byte")
        with self.assertRaises(ipcnet.InvalidArgument):
            c.bind("x" * 300)           # names are at most 255 bytes

    def test_denied_with_the_rule_that_denied_it(self) -> None:
        c = self.client()
        with self.assertRaises(ipcnet.NotAllowed) as cm:
            c.bind("secret")
        e = cm.exception
        self.assertIsInstance(e, PermissionError)
        self.assertEqual(e.errno, errno.EACCES)
        self.assertEqual(e.filename, "secret")
        self.assertIn("deny bind secret", e.node_words)
        self.assertIn(self.policy, e.node_words)
        self.assertIn("not allowed", e.strerror)
        self.assertIn(e.node_words, str(e))
        # The same refusal again has the same words, and they are its own.
        with self.assertRaises(ipcnet.NotAllowed) as cm:
            c.bind("secret")
        self.assertIn("deny bind secret", cm.exception.node_words)

    def test_no_stale_words_on_a_later_failure(self) -> None:
        c = self.client()
        with self.assertRaises(ipcnet.NotAllowed):
            c.bind("secret")
        # A failure found by the library alone: the node said nothing about
        # it, though ipcnet_last_error() still holds the refusal's words.
        with self.assertRaises(ipcnet.MessageTooLarge) as cm:
            c.send("printer", bytes(c.max_message + 1))
        self.assertEqual(cm.exception.errno, errno.EMSGSIZE)
        self.assertEqual(cm.exception.node_words, "")
        self.assertNotIn("deny", str(cm.exception))


class TestSend(NodeTest):
    def test_send_and_the_sender(self) -> None:
        h = self.client("holder")
        s = self.client("sender")
        h.bind("svc.send")
        seq = s.send("svc.send", b"hello")
        self.assertEqual(seq, s.last_id)
        m = recv(h)
        self.assertEqual(m.kind, Kind.SEND)
        self.assertIs(type(m.kind), Kind)
        self.assertEqual(m.data, b"hello")
        self.assertIs(type(m.data), bytes)
        self.assertEqual(m.name, "svc.send")
        self.assertEqual(m.source, s.address)
        self.assertEqual(m.node, "pyalpha")
        self.assertEqual(m.uid, os.getuid())
        self.assertEqual(m.user, pwd.getpwuid(os.getuid()).pw_name)
        self.assertRegex(m.node_id, r"^[0-9a-f]{32}$")
        self.assertEqual(m.node_id, h.query_peers()[0]["id"])
        self.assertIsNone(m.event)
        self.assertEqual(m.error, 0)
        self.assertEqual(m.gap_ms, 0)
        self.assertIn("kind=SEND", repr(m))
        # To the holder's own address too.
        s.send(h.address, "to the address")
        m = recv(h)
        self.assertEqual((m.kind, m.name, m.text), (Kind.SEND, h.address, "to the address"))

    def test_payloads(self) -> None:
        h = self.client()
        s = self.client()
        h.bind("svc.payload")
        big = bytes(range(256)) * 4096          # 1 MiB, every byte value
        arr = bytearray(b"a bytearray")
        strided = memoryview(b"0123456789")[::2]  # not contiguous
        cases = [("text é ☃", "text é ☃".encode()), (b"bytes", b"bytes"), (arr, bytes(arr)),
                 (memoryview(b"a view"), b"a view"), (strided, b"02468"), (b"", b""),
                 (None, b""), (big, big), (b"\0nul\0", b"\0nul\0")]
        for data, _ in cases:
            s.send("svc.payload", data)
        for data, want in cases:
            m = recv(h)
            self.assertEqual(m.data, want, f"sent {type(data).__name__}")
        with self.assertRaises(TypeError):
            s.send("svc.payload", 42)  # type: ignore[arg-type]

    def test_undeliverable_comes_back_as_an_error(self) -> None:
        s = self.client()
        seq = s.send("nobody.here", b"x")
        m = recv_kind(s, Kind.ERROR)
        self.assertEqual(m.id, seq)
        self.assertEqual(m.error, errno.ENOENT)
        self.assertIsNone(m.uid)
        self.assertTrue(m.text)
        e = m.exception()
        self.assertIsInstance(e, ipcnet.NoSuchName)
        self.assertEqual(e.node_words, m.text)

    def test_confirm(self) -> None:
        h = self.client()
        s = self.client()
        h.bind("svc.confirm")
        s.send("svc.confirm", b"confirmed", confirm=True)
        self.assertEqual(recv(h).data, b"confirmed")
        with self.assertRaises(ipcnet.NoSuchName) as cm:
            s.send("nobody.here", b"x", confirm=True)
        self.assertEqual(cm.exception.filename, "nobody.here")
        self.assertTrue(cm.exception.node_words)

    def test_more_and_flush(self) -> None:
        h = self.client()
        s = self.client()
        h.bind("svc.batch")
        for i in range(100):
            s.send("svc.batch", f"m{i}", more=True)
        s.flush(WAIT_S)
        self.assertFalse(s.want_write)
        self.assertEqual([recv(h).text for _ in range(100)], [f"m{i}" for i in range(100)])

    def test_dontwait_and_nonblock_say_would_block(self) -> None:
        h = self.client("slow")
        h.bind("svc.full")
        s = self.client("flooder", nonblock=True)
        self.assertTrue(s.nonblock)
        self.assertIsNone(s.recv())            # never waits
        self.assertEqual(list(s), [])           # nothing ready: iteration ends
        chunk = bytes(256 * 1024)
        sent = 0
        with self.assertRaises(ipcnet.WouldBlock) as cm:
            for _ in range(4000):               # 1 GiB: far past every queue
                s.send("svc.full", chunk)
                sent += 1
        self.assertIsInstance(cm.exception, BlockingIOError)
        self.assertEqual(cm.exception.errno, errno.EAGAIN)
        self.assertGreater(sent, 0)
        b = self.client("blocking")
        with self.assertRaises(ipcnet.WouldBlock):
            for _ in range(4000):
                b.send("svc.full", chunk, dontwait=True)


class TestRequests(NodeTest):
    def serve(self, name: str, fn=lambda m: m.data.upper(), count: int = 1) -> threading.Thread:
        """A holder of name in a thread of its own, answering count requests."""
        ready = threading.Event()

        def run() -> None:
            with self.node.connect("server") as c:
                c.bind(name)
                ready.set()
                for _ in range(count):
                    m = c.recv(WAIT_S)
                    if m is None:
                        return
                    if m.kind == Kind.REQUEST:
                        c.reply(m, fn(m))

        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.assertTrue(ready.wait(WAIT_S))
        self.addCleanup(t.join, WAIT_S)
        return t

    def test_request(self) -> None:
        self.serve("svc.upper")
        c = self.client()
        r = c.request("svc.upper", "hello", timeout=WAIT_S)
        self.assertEqual(r.kind, Kind.REPLY)
        self.assertEqual(r.data, b"HELLO")
        self.assertEqual(r.node, "pyalpha")
        self.assertEqual(r.uid, os.getuid())
        self.assertRegex(r.source, r"^:\d+@pyalpha$")

    def test_request_sees_timeout_ms_and_who_asks(self) -> None:
        seen: list[ipcnet.Message] = []
        self.serve("svc.who", lambda m: (seen.append(m), b"ok")[1])
        c = self.client()
        self.assertEqual(c.request("svc.who", b"?", timeout=3).data, b"ok")
        m = seen[0]
        self.assertEqual((m.kind, m.name, m.source, m.data), (Kind.REQUEST, "svc.who",
                                                              c.address, b"?"))
        self.assertGreater(m.timeout_ms, 0)
        self.assertLessEqual(m.timeout_ms, 3000)

    def test_request_errors(self) -> None:
        c = self.client()
        with self.assertRaises(ipcnet.NoSuchName) as cm:
            c.request("nobody.here", b"x", timeout=WAIT_S)
        self.assertEqual(cm.exception.filename, "nobody.here")
        mute = self.client("mute")
        mute.bind("svc.mute")
        t0 = time.monotonic()
        with self.assertRaises(ipcnet.TimedOut) as cm2:
            c.request("svc.mute", b"x", timeout=0.3)
        self.assertIsInstance(cm2.exception, TimeoutError)
        self.assertLess(time.monotonic() - t0, 0.3 + WAIT_S)
        self.assertEqual(recv(mute).kind, Kind.REQUEST)
        # The holder goes away before it answers.
        gone = self.node.connect("vanishing")
        gone.bind("svc.gone")
        rid = c.request_async("svc.gone", b"x", timeout=WAIT_S)
        self.assertEqual(recv(gone).kind, Kind.REQUEST)
        gone.close()
        m = recv_kind(c, Kind.ERROR)
        self.assertEqual((m.id, m.error), (rid, errno.ECONNRESET))
        self.assertIsInstance(m.exception(), ConnectionResetError)

    def test_request_async_and_reply_to_later(self) -> None:
        h = self.client()
        c = self.client()
        h.bind("svc.later")
        ids = [c.request_async("svc.later", f"q{i}", timeout=WAIT_S) for i in range(3)]
        reqs = [recv(h) for _ in ids]
        self.assertEqual([r.kind for r in reqs], [Kind.REQUEST] * 3)
        self.assertEqual([r.id for r in reqs], sorted(r.id for r in reqs))
        # Answered out of order, after other calls: the requests are copies.
        h.query_stats()
        h.reply_to(reqs[2].source, reqs[2].id, b"a2")
        h.reply(reqs[0], b"a0")
        h.reply(reqs[1], reqs[1].data + b"!")
        got = {m.id: (m.kind, m.data) for m in (recv(c), recv(c), recv(c))}
        self.assertEqual(got, {ids[0]: (Kind.REPLY, b"a0"), ids[1]: (Kind.REPLY, b"q1!"),
                               ids[2]: (Kind.REPLY, b"a2")})
        c.send("svc.later", b"plain")
        with self.assertRaises(ipcnet.InvalidArgument):
            h.reply(recv(h), b"not a request")


class TestTopicsAndWatches(NodeTest):
    def test_publish_subscribe_unsubscribe(self) -> None:
        sub = self.client()
        pub = self.client()
        sub.subscribe("sensors.*")
        seq = pub.publish("sensors.temp", b"21.5")
        self.assertEqual(seq, pub.last_id)
        m = recv(sub)
        self.assertEqual((m.kind, m.name, m.data, m.source, m.node),
                         (Kind.PUBLISH, "sensors.temp", b"21.5", pub.address, "pyalpha"))
        pub.publish("other.topic", b"not for sub")
        sub.unsubscribe("sensors.*")
        pub.publish("sensors.temp", b"after", confirm=True)
        self.assertIsNone(sub.recv(QUIET_S))

    def test_watch_unwatch(self) -> None:
        w = self.client()
        h = self.client()
        h.bind("watched.a")
        w.watch("watched.*")
        m = recv(w)
        self.assertEqual((m.kind, m.event, m.name, m.node),
                         (Kind.EVENT, Event.NAME_UP, "watched.a", "pyalpha"))
        self.assertIs(type(m.event), Event)
        self.assertIsNone(m.uid)
        h2 = self.node.connect()
        h2.bind("watched.b")
        m = recv(w)
        self.assertEqual((m.event, m.name), (Event.NAME_UP, "watched.b"))
        h2.close()
        m = recv(w)
        self.assertEqual((m.event, m.name), (Event.NAME_DOWN, "watched.b"))
        w.unwatch("watched.*")
        h.unbind("watched.a")
        self.assertIsNone(w.recv(QUIET_S))


class TestReceiving(NodeTest):
    def test_recv_timeout(self) -> None:
        c = self.client()
        t0 = time.monotonic()
        self.assertIsNone(c.recv(0))
        self.assertIsNone(c.recv(0.2))
        self.assertGreaterEqual(time.monotonic() - t0, 0.2)
        self.assertLess(time.monotonic() - t0, 0.2 + WAIT_S)
        with self.assertRaises(ValueError):
            c.recv(-1)

    def test_iteration(self) -> None:
        h = self.client()
        h.bind("svc.iter")
        s = self.client()
        for i in range(5):
            s.send("svc.iter", str(i))
        got = []
        for m in h:
            got.append(m.text)
            if len(got) == 5:
                break
        self.assertEqual(got, ["0", "1", "2", "3", "4"])

    def test_data_is_a_copy(self) -> None:
        h = self.client()
        h.bind("svc.copy")
        s = self.client()
        s.send("svc.copy", b"first" * 1000)
        s.send("svc.copy", b"second" * 1000)
        first = recv(h)
        second = recv(h)            # the library's buffer moved on
        h.query_stats()             # and was used again
        for i in range(50):
            s.send("svc.copy", bytes([i]) * 5000)
        for _ in range(50):
            recv(h)
        self.assertEqual(first.data, b"first" * 1000)
        self.assertEqual(first.source, s.address)
        self.assertEqual(second.data, b"second" * 1000)
        with self.assertRaises(dataclasses.FrozenInstanceError):
            first.data = b"changed"  # type: ignore[misc]

    def test_selectors_and_dispatch(self) -> None:
        h = self.client("loop", nonblock=True)
        h.bind("svc.loop")
        s = self.client()
        for i in range(10):
            s.send("svc.loop", str(i))
        got: list[str] = []
        with selectors.DefaultSelector() as sel:
            sel.register(h, selectors.EVENT_READ)
            deadline = time.monotonic() + WAIT_S
            while len(got) < 10 and time.monotonic() < deadline:
                if sel.select(timeout=WAIT_S):
                    n = h.dispatch(lambda m: got.append(m.text))
                    self.assertGreaterEqual(n, 0)
        self.assertEqual(got, [str(i) for i in range(10)])

    def test_dispatch_keeps_what_a_failing_handler_left(self) -> None:
        h = self.client()
        h.bind("svc.raise")
        s = self.client()
        for i in range(3):
            s.send("svc.raise", str(i), confirm=True)

        def boom(m: ipcnet.Message) -> None:
            raise RuntimeError(m.text)

        with self.assertRaises(RuntimeError) as cm:
            until("dispatch() sees the messages", lambda: h.dispatch(boom))
        self.assertEqual(str(cm.exception), "0")
        self.assertEqual([recv(h).text, recv(h).text], ["1", "2"])

    def test_recv_in_one_thread_send_in_another(self) -> None:
        c = self.client("shared")
        got: list[ipcnet.Message] = []
        t = threading.Thread(target=lambda: got.append(recv(c)), daemon=True)
        t.start()
        time.sleep(0.1)         # the thread waits in recv() now
        c.bind("svc.threads")   # the client is not held by the waiting thread
        other = self.client()
        other.send("svc.threads", b"across threads")
        t.join(WAIT_S)
        self.assertFalse(t.is_alive())
        self.assertEqual(got[0].data, b"across threads")

    def test_recv_while_another_thread_waits_in_the_library(self) -> None:
        c = self.client("shared")
        c.bind("svc.wake")
        other = self.client()
        got: list[ipcnet.Message] = []
        t = threading.Thread(target=lambda: got.append(recv(c)), daemon=True)
        t.start()
        time.sleep(0.1)
        # The message arrives while this thread's request waits in the
        # library, which may read it into its buffer before the waiting
        # thread looks: that thread must get it all the same.
        with self.assertRaises(ipcnet.TimedOut):
            other.send("svc.wake", b"buffered")
            c.request(c.address, b"to myself, never answered", timeout=0.3)
        t.join(WAIT_S)
        self.assertFalse(t.is_alive())
        self.assertIn(got[0].data, (b"buffered", b"to myself, never answered"))

    def test_close_wakes_a_waiting_recv(self) -> None:
        c = self.node.connect()
        errs: list[BaseException] = []

        def wait() -> None:
            try:
                c.recv()
            except BaseException as e:      # noqa: B902 - what it raised is the test
                errs.append(e)

        t = threading.Thread(target=wait, daemon=True)
        t.start()
        time.sleep(0.1)
        c.close()
        t.join(WAIT_S)
        self.assertFalse(t.is_alive())
        self.assertIsInstance(errs[0], ipcnet.ClientClosed)


class TestQueries(NodeTest):
    def test_listings(self) -> None:
        c = self.client("lister")
        c.bind("svc.listed")
        (svc,) = [r for r in c.query_services() if r["name"] == "svc.listed"]
        self.assertEqual(svc, {"name": "svc.listed", "node": "pyalpha", "holder": c.address,
                               "label": "lister",
                               "user": pwd.getpwuid(os.getuid()).pw_name})
        peers = c.query_peers()
        self.assertEqual(peers[0]["name"], "pyalpha")
        self.assertEqual(peers[0]["source"], "self")
        self.assertEqual(peers[0]["state"], "up")
        self.assertRegex(peers[0]["id"], r"^[0-9a-f]{32}$")
        self.assertRegex(peers[0]["address"], r"^tcp://127\.0\.0\.1:\d+$")
        self.assertIsInstance(peers[0]["rtt_us"], int)
        self.assertTrue(peers[0]["key"])
        stats = c.query_stats()
        self.assertEqual(stats["node"], "pyalpha")
        self.assertEqual(stats["socket"], self.node.sock)
        self.assertIsInstance(stats["clients"], int)
        self.assertGreaterEqual(stats["names"], 1)
        (me,) = [r for r in c.query_clients() if r["address"] == c.address]
        self.assertEqual((me["label"], me["pid"], me["uid"], me["user"]),
                         ("lister", os.getpid(), os.getuid(),
                          pwd.getpwuid(os.getuid()).pw_name))
        self.assertIsInstance(me["queued"], int)
        text = c.query(ipcnet.Query.STATS)
        self.assertTrue(re.search(r"^clients\t\d+$", text, re.M))
        self.assertIsNone(peers[0]["reason"])

    def test_diagnose(self) -> None:
        c = self.client("doctor")
        text = c.diagnose("no-such-peer")
        self.assertIn("no-such-peer: not known", text)
        self.assertIn("is this node", c.diagnose("pyalpha"))
        with self.assertRaises(ipcnet.IpcnetError):
            c.diagnose("")


class TestMonitor(NodeTest):
    def test_monitor_sees_what_is_routed(self) -> None:
        m = self.client("monitor")
        m.monitor("py.mon.*")
        h = self.client("holder")
        h.bind("py.mon.svc")
        s = self.client("sender")
        s.send("py.mon.svc", b"x" * 100, confirm=True)
        note = m.recv(timeout=5)
        self.assertIsNotNone(note)
        self.assertEqual(note.kind, ipcnet.Kind.MONITOR)
        self.assertEqual(note.event, ipcnet.Kind.SEND)
        self.assertEqual((note.name, note.source, note.total), ("py.mon.svc", s.address, 100))
        self.assertEqual(note.data, b"x" * 64)
        self.assertEqual(note.uid, os.getuid())
        self.assertIsNone(m.recv(timeout=0.3))


class TestStore(NodeTest):
    """put, get, delete, keys, watch_keys, compare-and-set, TTL and
    ephemeral keys, against the real node's store."""

    def test_put_get_delete(self) -> None:
        c = self.client("store")
        v1 = c.put("py.cfg.mode", "fast")
        self.assertGreater(v1, 0)
        m = c.get("py.cfg.mode")
        self.assertEqual((m.kind, m.name, m.data, m.version), (Kind.KEY, "py.cfg.mode", b"fast", v1))
        v2 = c.put("py.cfg.mode", b"\x00binary\xff")
        self.assertGreater(v2, v1)
        self.assertEqual(self.client("other").get("py.cfg.mode").data, b"\x00binary\xff")
        c.delete("py.cfg.mode")
        with self.assertRaises(ipcnet.NoSuchKey) as e:
            c.get("py.cfg.mode")
        self.assertEqual(e.exception.errno, errno.ENOENT)
        self.assertIsInstance(e.exception, KeyError)
        with self.assertRaises(ipcnet.NoSuchKey):
            c.delete("py.cfg.mode")
        with self.assertRaises(ipcnet.InvalidArgument):
            c.put("not a key", "x")

    def test_keys(self) -> None:
        c = self.client("store")
        for i in range(3):
            c.put(f"py.list.{i}", "v" * i)
        c.put("py.other", "x")
        got = c.keys("py.list.*")
        self.assertEqual(sorted((k, size) for k, _, size in got),
                         [("py.list.0", 0), ("py.list.1", 1), ("py.list.2", 2)])
        self.assertTrue(all(version > 0 for _, version, _ in got))
        self.assertIn("py.other", [k for k, _, _ in c.keys()])

    def test_compare_and_set(self) -> None:
        a, b = self.client("a"), self.client("b")
        v = a.put("py.lease", "a", expected_version=0)       # only if absent
        with self.assertRaises(ipcnet.VersionMismatch) as e:
            b.put("py.lease", "b", expected_version=0)
        self.assertEqual(e.exception.errno, errno.ESTALE)
        with self.assertRaises(ipcnet.VersionMismatch):
            b.put("py.lease", "b", expected_version=v + 1)
        v2 = b.put("py.lease", "b", expected_version=v)
        self.assertGreater(v2, v)
        self.assertEqual(a.get("py.lease").data, b"b")

    def test_ttl_and_ephemeral(self) -> None:
        c = self.client("store")
        c.put("py.ttl", "soon gone", ttl=0.3)
        self.assertEqual(c.get("py.ttl").data, b"soon gone")
        until("the key to expire", lambda: not c.keys("py.ttl"), timeout=5)
        owner = self.node.connect("owner")
        owner.put("py.up.owner", "here", ephemeral=True)
        self.assertEqual(c.get("py.up.owner").data, b"here")
        owner.close()
        until("the ephemeral key to go with its client",
              lambda: not c.keys("py.up.owner"), timeout=5)

    def test_watch_keys(self) -> None:
        w, c = self.client("watcher"), self.client("writer")
        c.put("py.watch.before", "1")
        w.watch_keys("py.watch.*")
        m = recv_kind(w, Kind.KEY)
        self.assertEqual((m.event, m.name, m.data), (ipcnet.KeyEvent.PUT, "py.watch.before", b"1"))
        v = c.put("py.watch.after", "2")
        m = recv_kind(w, Kind.KEY)
        self.assertEqual((m.event, m.name, m.data, m.version),
                         (ipcnet.KeyEvent.PUT, "py.watch.after", b"2", v))
        c.delete("py.watch.before")
        m = recv_kind(w, Kind.KEY)
        self.assertEqual((m.event, m.name), (ipcnet.KeyEvent.DEL, "py.watch.before"))
        c.put("py.elsewhere", "x")
        w.unwatch_keys("py.watch.*")
        c.put("py.watch.after", "3")
        self.assertIsNone(w.recv(timeout=QUIET_S))


if __name__ == "__main__":
    unittest.main()
