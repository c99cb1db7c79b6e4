#!/usr/bin/env python3
"""mdns_flood.py: a hostile mDNS responder for test_mdns_hostile.sh.

Announces COUNT fake ipc-node instances of type _ipcnode._tcp.local on the
multicast group 224.0.0.251:5353 of the interface that has ADDR, and
answers the queries that ask for them. Each fake has a random 32-byte
"key" and the TXT record a real node publishes (discovery/mdns.c):

    v=3  cluster=CLUSTER  port=P  name=fakeN  key=<Z85 of the key>
    id=<the key's first 16 bytes in hex>

so that a node believes it and dials it: SRV fakeN._ipcnode._tcp.local ->
HOST.local, port P (BASE_PORT + N), A HOST.local -> ADDR. A TCP listener on
each port accepts and closes every connection (a dial that never
handshakes) and counts it; every second the counts go to STATS as JSON
({"port": dials, ...}, only ports dialled), written whole (rename).

Python 3 standard library only. Runs until SIGTERM or SIGINT.
"""

import argparse
import json
import os
import secrets
import selectors
import signal
import socket
import struct
import sys
import time

MDNS_GROUP = "224.0.0.251"
MDNS_PORT = 5353
SERVICE = "_ipcnode._tcp.local"
T_A, T_PTR, T_TXT, T_SRV, T_ANY = 1, 12, 16, 33, 255
FLUSH = 0x8000          # cache-flush bit of a unique record's class
PACKET_MAX = 1400       # no IP fragments

Z85 = ("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
       ".-:+=^!/*?&<>()[]{}@%$#")


def z85_encode(data):
    """ZeroMQ RFC 32: every 4 bytes, big-endian, as 5 base-85 digits."""
    assert len(data) % 4 == 0
    out = []
    for i in range(0, len(data), 4):
        v = int.from_bytes(data[i:i + 4], "big")
        digits = []
        for _ in range(5):
            digits.append(Z85[v % 85])
            v //= 85
        out.extend(reversed(digits))
    return "".join(out)


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode()
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def record(name, rtype, rclass, ttl, rdata):
    return encode_name(name) + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def read_name(pkt, at, depth=0):
    """A (possibly compressed) name at offset at: (name, offset after it)."""
    labels = []
    end = None
    while True:
        if at >= len(pkt) or depth > 20:
            raise ValueError("bad name")
        n = pkt[at]
        if n & 0xC0 == 0xC0:
            if at + 1 >= len(pkt):
                raise ValueError("bad pointer")
            ptr = ((n & 0x3F) << 8) | pkt[at + 1]
            if end is None:
                end = at + 2
            at = ptr
            depth += 1
            continue
        if n == 0:
            at += 1
            break
        labels.append(pkt[at + 1:at + 1 + n].decode("utf-8", "replace"))
        at += 1 + n
    return ".".join(labels).lower(), (end if end is not None else at)


def questions(pkt):
    """The (name, type) questions of a query packet, or [] for a response."""
    if len(pkt) < 12:
        return []
    _, flags, qd = struct.unpack("!HHH", pkt[:6])
    if flags & 0x8000:
        return []
    out, at = [], 12
    for _ in range(qd):
        name, at = read_name(pkt, at)
        if at + 4 > len(pkt):
            break
        qtype, _ = struct.unpack("!HH", pkt[at:at + 4])
        at += 4
        out.append((name, qtype))
    return out


class Flood:
    def __init__(self, args):
        self.args = args
        self.host = args.host + ".local"
        self.fakes = []
        for n in range(args.count):
            key = secrets.token_bytes(32)
            port = args.base_port + n
            name = "fake%d" % n
            txt = [b"v=3", ("cluster=" + args.cluster).encode(), ("port=%d" % port).encode(),
                   ("name=" + name).encode(), ("key=" + z85_encode(key)).encode(),
                   ("id=" + key[:16].hex()).encode()]
            self.fakes.append({"instance": "%s.%s" % (name, SERVICE), "port": port,
                               "txt": b"".join(bytes([len(t)]) + t for t in txt)})
        self.by_instance = {f["instance"].lower(): f for f in self.fakes}
        self.addr = socket.inet_aton(args.addr)
        self.last_all = 0.0

    def a_record(self):
        return record(self.host, T_A, 1 | FLUSH, self.args.ttl, self.addr)

    def instance_records(self, f):
        ttl = self.args.ttl
        srv = struct.pack("!HHH", 0, 0, f["port"]) + encode_name(self.host)
        return [record(SERVICE, T_PTR, 1, ttl, encode_name(f["instance"])),
                record(f["instance"], T_SRV, 1 | FLUSH, ttl, srv),
                record(f["instance"], T_TXT, 1 | FLUSH, ttl, f["txt"])]

    def packets(self, fakes):
        """Responses (no questions) carrying the records of fakes, each under
        PACKET_MAX bytes and each with the A record of the host."""
        out, body, count = [], b"", 0
        a = self.a_record()
        for f in fakes:
            recs = b"".join(self.instance_records(f))
            if count and 12 + len(body) + len(recs) + len(a) > PACKET_MAX:
                out.append(struct.pack("!HHHHHH", 0, 0x8400, 0, count + 1, 0, 0) + body + a)
                body, count = b"", 0
            body += recs
            count += 3
        if count:
            out.append(struct.pack("!HHHHHH", 0, 0x8400, 0, count + 1, 0, 0) + body + a)
        return out

    def send(self, sock, pkts):
        for p in pkts:
            try:
                sock.sendto(p, (MDNS_GROUP, MDNS_PORT))
            except OSError as e:
                print("mdns_flood: send: %s" % e, file=sys.stderr)
            time.sleep(self.args.gap)

    def announce_all(self, sock):
        self.last_all = time.monotonic()
        self.send(sock, self.packets(self.fakes))

    def answer(self, sock, qs):
        wanted = []
        for name, qtype in qs:
            if name == SERVICE.lower() and qtype in (T_PTR, T_ANY):
                # All of them, at most once a second.
                if time.monotonic() - self.last_all >= 1.0:
                    self.announce_all(sock)
                return
            f = self.by_instance.get(name)
            if f and f not in wanted:
                wanted.append(f)
            if name == self.host.lower() and qtype in (T_A, T_ANY) and not wanted:
                pkt = struct.pack("!HHHHHH", 0, 0x8400, 0, 1, 0, 0) + self.a_record()
                self.send(sock, [pkt])
        if wanted:
            self.send(sock, self.packets(wanted))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--addr", required=True, help="the interface's IPv4 address")
    ap.add_argument("--count", type=int, default=1100)
    ap.add_argument("--cluster", default="ipcnet")
    ap.add_argument("--host", default="ipcfake", help="host name of the fakes (.local)")
    ap.add_argument("--base-port", type=int, default=20000)
    ap.add_argument("--ttl", type=int, default=600)
    ap.add_argument("--gap", type=float, default=0.002, help="seconds between packets")
    ap.add_argument("--stats", help="file for the dial counts (JSON)")
    ap.add_argument("--ready", help="file created once announced")
    args = ap.parse_args()

    flood = Flood(args)
    sel = selectors.DefaultSelector()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    udp.bind(("", MDNS_PORT))
    udp.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                   socket.inet_aton(MDNS_GROUP) + socket.inet_aton(args.addr))
    udp.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(args.addr))
    udp.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    udp.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    sel.register(udp, selectors.EVENT_READ, "udp")

    dials = {}
    for f in flood.fakes:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((args.addr, f["port"]))
        s.listen(16)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, f["port"])

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    def write_stats():
        if not args.stats:
            return
        tmp = args.stats + ".tmp"
        with open(tmp, "w") as fp:
            json.dump({str(k): v for k, v in dials.items()}, fp)
        os.rename(tmp, args.stats)

    # Announced twice, a second apart (RFC 6762 8.3), then on demand.
    flood.announce_all(udp)
    if args.ready:
        open(args.ready, "w").close()
    next_announce = time.monotonic() + 1.0
    announced = 1
    next_stats = 0.0
    print("mdns_flood: %d fakes announced from %s, ports %d-%d" %
          (args.count, args.addr, args.base_port, args.base_port + args.count - 1), flush=True)
    while not stop:
        now = time.monotonic()
        if announced < 2 and now >= next_announce:
            flood.announce_all(udp)
            announced += 1
        if now >= next_stats:
            write_stats()
            next_stats = now + 1.0
        for key, _ in sel.select(timeout=0.2):
            if key.data == "udp":
                try:
                    pkt, _ = udp.recvfrom(9000)
                except OSError:
                    continue
                try:
                    qs = questions(pkt)
                except (ValueError, UnicodeDecodeError):
                    continue
                if qs:
                    flood.answer(udp, qs)
            else:
                while True:
                    try:
                        c, _ = key.fileobj.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    dials[key.data] = dials.get(key.data, 0) + 1
                    c.close()
    write_stats()
    return 0


if __name__ == "__main__":
    sys.exit(main())
