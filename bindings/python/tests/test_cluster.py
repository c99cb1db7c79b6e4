"""Two real nodes on loopback (alpha, and beta given --peer to alpha's
port): sends, requests and publications across them, and who the
receiver is told sent them."""

from __future__ import annotations

import os
import pwd
import unittest

import ipcnet
from ipcnet import Kind

from nodes import START_S, WAIT_S, Node, peer_up, recv, until


class TestTwoNodes(unittest.TestCase):
    alpha: Node
    beta: Node

    @classmethod
    def setUpClass(cls) -> None:
        cls.alpha = Node("pyalpha").start()
        try:
            port = cls.alpha.port()
            cls.beta = Node("pybeta", ["--peer", f"tcp://127.0.0.1:{port}"]).start()
        except BaseException:
            cls.alpha.cleanup()
            raise
        try:
            until("alpha and beta see each other up",
                  lambda: peer_up(cls.alpha, "pybeta") and peer_up(cls.beta, "pyalpha"),
                  timeout=START_S + WAIT_S)
        except BaseException:
            cls.tearDownClass()
            raise
        cls.alpha_id = cls.alpha.node_id()
        cls.beta_id = cls.beta.node_id()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.beta.cleanup()
        cls.alpha.cleanup()

    def client(self, node: Node, label: str | None = None) -> ipcnet.Client:
        c = node.connect(label)
        self.addCleanup(c.close)
        return c

    def holder_on_beta(self, name: str) -> ipcnet.Client:
        h = self.client(self.beta, "beta-holder")
        h.bind(name)
        q = self.client(self.alpha, "alpha-query")
        until(f"alpha lists {name} on beta",
              lambda: any(r["name"] == name and r["node"] == "pybeta"
                          for r in q.query_services()))
        return h

    def test_peers_listing(self) -> None:
        q = self.client(self.alpha)
        (b,) = [r for r in q.query_peers() if r["name"] == "pybeta"]
        self.assertEqual(b["id"], self.beta_id)
        self.assertEqual(b["state"], "up")
        self.assertRegex(b["address"], r"^tcp://127\.0\.0\.1:\d+$")
        # A remote holder: its node tells only that it holds the name.
        self.holder_on_beta("x.listed")
        (row,) = [r for r in q.query_services() if r["name"] == "x.listed"]
        self.assertEqual((row["node"], row["holder"], row["label"], row["user"]),
                         ("pybeta", None, None, None))

    def test_send_across_with_the_senders_identity(self) -> None:
        h = self.holder_on_beta("x.send")
        s = self.client(self.alpha, "alpha-sender")
        s.send("x.send", b"over the wire", confirm=True)
        m = recv(h)
        self.assertEqual((m.kind, m.name, m.data), (Kind.SEND, "x.send", b"over the wire"))
        self.assertEqual(m.source, s.address)
        self.assertRegex(m.source, r"^:\d+@pyalpha$")
        self.assertEqual(m.node, "pyalpha")
        self.assertEqual(m.node_id, self.alpha_id)
        self.assertEqual(m.uid, os.getuid())
        self.assertEqual(m.user, pwd.getpwuid(os.getuid()).pw_name)
        # Back to the sender's address, across again.
        h.send(m.source, b"and back")
        back = recv(s)
        self.assertEqual((back.data, back.node, back.node_id), (b"and back", "pybeta",
                                                                self.beta_id))

    def test_request_across(self) -> None:
        h = self.holder_on_beta("x.upper")
        c = self.client(self.alpha, "alpha-asker")
        rid = c.request_async("x.upper@pybeta", b"hello", timeout=WAIT_S)
        req = recv(h)
        self.assertEqual((req.kind, req.data, req.source, req.node, req.node_id),
                         (Kind.REQUEST, b"hello", c.address, "pyalpha", self.alpha_id))
        self.assertGreater(req.timeout_ms, 0)
        h.reply(req, req.data.upper())
        rep = recv(c)
        self.assertEqual((rep.kind, rep.id, rep.data), (Kind.REPLY, rid, b"HELLO"))
        self.assertEqual((rep.source, rep.node, rep.node_id), (h.address, "pybeta",
                                                               self.beta_id))

    def test_blocking_request_across(self) -> None:
        import threading
        h = self.holder_on_beta("x.echo")

        def serve() -> None:
            m = h.recv(WAIT_S)
            if m is not None and m.kind == Kind.REQUEST:
                h.reply(m, b"echo:" + m.data)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        c = self.client(self.alpha)
        r = c.request("x.echo", b"ping", timeout=WAIT_S)
        t.join(WAIT_S)
        self.assertEqual((r.data, r.node), (b"echo:ping", "pybeta"))

    def test_no_such_name_on_the_other_node(self) -> None:
        c = self.client(self.alpha)
        with self.assertRaises(ipcnet.NoSuchName):
            c.request("x.nobody@pybeta", b"?", timeout=WAIT_S)

    def test_publish_across(self) -> None:
        sub = self.client(self.beta)
        sub.subscribe("x.topic.*")
        pub = self.client(self.alpha)

        # The subscription reaches alpha in its own time: publish until it has.
        def arrived() -> ipcnet.Message | None:
            pub.publish("x.topic.t", b"21.5")
            return sub.recv(0.1)

        m = until("a publication from alpha reaches beta's subscriber", arrived)
        self.assertEqual((m.kind, m.name, m.data, m.source, m.node, m.node_id),
                         (Kind.PUBLISH, "x.topic.t", b"21.5", pub.address, "pyalpha",
                          self.alpha_id))

    def test_watch_remote_names(self) -> None:
        w = self.client(self.alpha)
        w.watch("x.watched")
        h = self.client(self.beta)
        h.bind("x.watched")
        m = recv(w)
        self.assertEqual((m.kind, m.event, m.name, m.node),
                         (Kind.EVENT, ipcnet.Event.NAME_UP, "x.watched", "pybeta"))
        h.close()
        m = recv(w)
        self.assertEqual((m.event, m.name, m.node),
                         (ipcnet.Event.NAME_DOWN, "x.watched", "pybeta"))


if __name__ == "__main__":
    unittest.main()
