"""A node killed (SIGKILL) and started again in the same directory: a
client made with reconnect=True sees NODE_DOWN and NODE_UP and holds
again what it held; one without it gets ConnectionLost."""

from __future__ import annotations

import errno
import threading
import time
import unittest

import ipcnet
from ipcnet import Event, Kind

from nodes import START_S, WAIT_S, Node, recv, recv_kind

# The library tries again after 100 ms, backing off to 5 s.
BACK_S = START_S + 10


class TestReconnect(unittest.TestCase):
    def setUp(self) -> None:
        self.node = Node("pyphoenix").start()
        self.addCleanup(self.node.cleanup)

    def client(self, label: str | None = None, **kw: bool) -> ipcnet.Client:
        c = self.node.connect(label, **kw)
        self.addCleanup(c.close)
        return c

    def test_node_down_node_up_and_all_held_again(self) -> None:
        c = self.client("survivor", reconnect=True)
        self.assertTrue(c.reconnect)
        fd = c.fileno()
        c.bind("r.svc")
        c.subscribe("r.topic.*")
        c.watch("r.watched")
        # A request in flight when the node goes: it fails, with its id.
        mute = self.node.connect("mute")
        mute.bind("r.mute")
        rid = c.request_async("r.mute", b"?", timeout=WAIT_S * 4)
        self.assertEqual(recv(mute).kind, Kind.REQUEST)

        self.node.crash()
        down = recv_kind(c, Kind.EVENT, WAIT_S)
        self.assertEqual((down.event, down.node), (Event.NODE_DOWN, "pyphoenix"))
        failed = recv(c)
        self.assertEqual((failed.kind, failed.id, failed.error),
                         (Kind.ERROR, rid, errno.ECONNRESET))
        self.assertIsInstance(failed.exception(), ipcnet.ConnectionLost)
        # While the node is away: a send that may not wait fails at once.
        with self.assertRaises(ipcnet.NotConnected) as cm:
            c.send("r.svc", b"x", dontwait=True)
        self.assertIsInstance(cm.exception, ConnectionError)
        time.sleep(0.3)

        self.node.start()
        up = recv_kind(c, Kind.EVENT, BACK_S)
        self.assertEqual(up.event, Event.NODE_UP)
        self.assertGreaterEqual(up.gap_ms, 300)
        self.assertLess(up.gap_ms, BACK_S * 1000 + 1000)
        self.assertEqual(c.fileno(), fd)        # the same descriptor throughout
        self.assertRegex(c.address, r"^:\d+@pyphoenix$")

        # Held again: the name, the subscription, the watch.
        other = self.client("other")
        self.assertIn(("r.svc", c.address), [(r["name"], r["holder"])
                                             for r in other.query_services()])
        other.send("r.svc", b"after the gap")
        m = recv(c)
        self.assertEqual((m.kind, m.data, m.source), (Kind.SEND, b"after the gap",
                                                      other.address))
        other.publish("r.topic.t", b"published")
        self.assertEqual(recv_kind(c, Kind.PUBLISH).data, b"published")
        other.bind("r.watched")
        ev = recv_kind(c, Kind.EVENT)
        self.assertEqual((ev.event, ev.name), (Event.NAME_UP, "r.watched"))

    def test_a_blocking_send_waits_for_the_node(self) -> None:
        c = self.client("patient", reconnect=True)
        c.bind("r.patient")
        self.node.crash()
        # (The call that meets the loss gets ConnectionLost: let recv() meet it.)
        self.assertEqual(recv_kind(c, Kind.EVENT).event, Event.NODE_DOWN)
        restarter = threading.Timer(0.5, self.node.start)
        restarter.start()
        self.addCleanup(restarter.join, START_S)
        # Waits in the library for the node (up to 30 s), then goes: to the
        # name this client holds again by then.
        t0 = time.monotonic()
        c.send("r.patient", b"waited")
        self.assertGreaterEqual(time.monotonic() - t0, 0.4)
        got = {}
        while len(got) < 2:
            m = recv(c, BACK_S)
            got[m.event if m.kind == Kind.EVENT else m.kind] = m
        self.assertEqual(set(got), {Event.NODE_UP, Kind.SEND})
        self.assertEqual(got[Kind.SEND].data, b"waited")

    # A message the node sent after it answered the binds made again comes
    # after NODE_UP, even when both are read at once.
    def test_node_up_comes_before_what_the_node_sent_after_it(self) -> None:
        c = self.client("orderly", reconnect=True)
        c.bind("r.order")
        self.node.crash()
        self.assertEqual(recv_kind(c, Kind.EVENT).event, Event.NODE_DOWN)
        self.node.start()
        # Waits for the node's welcome; the bind made again has gone out
        # then, so the node answers it before it delivers this.
        c.send("r.order", b"after the binds")
        time.sleep(0.2)     # both answers in the socket: read at once
        first = recv(c)
        self.assertEqual((first.kind, first.event), (Kind.EVENT, Event.NODE_UP))
        self.assertEqual(recv(c).data, b"after the binds")

    def test_without_reconnect_the_client_is_lost(self) -> None:
        c = self.client("mortal")
        c.bind("r.mortal")
        self.node.crash()
        with self.assertRaises(ipcnet.ConnectionLost) as cm:
            c.recv(WAIT_S)
        self.assertIsInstance(cm.exception, ConnectionResetError)
        with self.assertRaises(ipcnet.ConnectionLost):
            c.send("r.mortal", b"x")
        self.node.start()
        with self.assertRaises(ipcnet.ConnectionLost):
            c.bind("r.mortal")      # dead for good: connect again
        with self.node.connect() as fresh:
            fresh.bind("r.mortal")


if __name__ == "__main__":
    unittest.main()
