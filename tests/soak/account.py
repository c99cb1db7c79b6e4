#!/usr/bin/env python3
"""account.py: accounts for every message of a soak or partition run.

usage: account.py DIR [--chaos FILE] [--node-log HOST=FILE]... [--json]

DIR holds what soak_traffic wrote (see soak_traffic.c):
  led.<sender>              a sender's ledger (all its incarnations)
  rx.<name>.<n>.rec         incarnation n of the receiver holding <name>
  mon.<host>.<n>.rec        incarnation n of the monitor on <host>
The chaos log (chaos.sh) has one event a line, times in ms:
  <kind> <target> <t_start> <t_end> [detail]
  kinds: kill stop block linkdown (a node away, or cut off: losses of its
  peers are expected), avahi probdrop tbf (the link stays up: no loss is
  expected), killtx killrx termrx (clients), calm (the calm phase; target -)
  For kill, stop, block and linkdown t_end is when the node is back (its
  socket answers again, SIGCONT, the link healed).
Node logs: each "peer X (...) at ... lost: why" line is a peer loss.

What a sent message (one B line) may end as, by what the API promises:
  delivered         confirmed (OK) and read once by the holder of its name
  failed, definite  ENOENT, ENOTCONN, EMSGSIZE, ..., and ECONNRESET with
                    the node's words (the receiver went before its node
                    could write it): must never be read
  failed, unknown   EHOSTUNREACH (not acknowledged: may or may not have
                    arrived), ETIMEDOUT, ECONNRESET of our own node's
                    connection (the send met the loss; NODE_DOWN follows):
                    read or not, both are right; the count read is printed
  killed in send    the sender was SIGKILLed between its B and R lines:
                    unknown too
  lost in a killed receiver
                    confirmed (written to the receiver's socket), then its
                    receiver was SIGKILLed before it read it (killrx):
                    allowed by the API ("the receiver may still die before
                    it reads it"), counted apart, and only when a killrx of
                    that name falls after the send began and at most 2 s
                    after it was confirmed
  unaccounted       anything else: confirmed and never read with no kill to
                    explain it, a B with no R in an incarnation not killed,
                    a definite failure that was read anyway
Every read copy is also checked: its checksum, that it went to the name it
was sent to, that it was sent at all, once only, and in order per sender in
each receiver incarnation. Publications (never confirmed: a subscriber
that is away misses them, and nothing says so) are checked for checksum,
duplicates and order, and in the calm phase for completeness.

Prints "key value" lines, then "verdict ok" or "verdict FAIL <why>...".
Exit status 0 when the verdict is ok.
"""

import glob
import os
import re
import sys
import time
from collections import defaultdict

DEFINITE = {"ENOENT", "ENOTCONN", "EMSGSIZE", "EACCES", "EINVAL", "ENOBUFS", "ENOMEM",
            "EAGAIN"}
AWAY = {"kill", "stop", "block", "linkdown"}     # a node gone or cut off
GRACE_MS = 3000


def parse_args(argv):
    a = {"dir": None, "chaos": None, "logs": {}, "partition": None}
    i = 0
    while i < len(argv):
        x = argv[i]
        if x == "--chaos":
            a["chaos"] = argv[i + 1]
            i += 2
        elif x == "--node-log":
            h, f = argv[i + 1].split("=", 1)
            a["logs"].setdefault(h, []).append(f)
            i += 2
        elif a["dir"] is None:
            a["dir"] = x
            i += 1
        else:
            sys.exit("account.py: unexpected argument " + x)
    if not a["dir"]:
        sys.exit(__doc__)
    return a


def read_chaos(path):
    ev = []
    if not path or not os.path.exists(path):
        return ev
    for line in open(path):
        f = line.split()
        if len(f) >= 4 and f[2].isdigit() and f[3].isdigit():
            ev.append({"kind": f[0], "target": f[1], "t0": int(f[2]), "t1": int(f[3]),
                       "detail": " ".join(f[4:])})
    return ev


def read_ledgers(d):
    """sends[(sender, seq)] = dict; pubs[(sender, pseq)] = dict."""
    sends, pubs, incs = {}, {}, defaultdict(list)
    for path in sorted(glob.glob(os.path.join(d, "led.*"))):
        sender = os.path.basename(path)[4:]
        inc = -1
        last_r = None       # the last R of this incarnation, for "N down"
        for line in open(path, errors="replace"):
            f = line.split()
            if not f:
                continue
            t = f[0]
            if t == "S":
                inc += 1
                incs[sender].append({"pid": int(f[1]), "t": int(f[2]), "clean": False})
                last_r = None
            elif t == "X":
                if incs[sender]:
                    incs[sender][-1]["clean"] = True
            elif t == "B" and len(f) >= 5:
                sends[(sender, int(f[1]))] = {"dest": f[2], "tb": int(f[4]), "inc": inc,
                                              "rc": None, "err": None, "local": False}
                last_r = None
            elif t == "R" and len(f) >= 5:
                s = sends.get((sender, int(f[1])))
                if s:
                    s["rc"] = int(f[2])
                    s["tr"] = int(f[3])
                    s["err"] = f[4]
                    s["why"] = f[5] if len(f) > 5 else "-"
                    last_r = s
            elif t == "N" and f[1] == "down":
                # The send that met the loss of our own node: its
                # ECONNRESET says nothing of the receiver.
                if last_r is not None and last_r["err"] == "ECONNRESET":
                    last_r["local"] = True
                last_r = None
            elif t == "I" and len(f) >= 3:
                s = sends.get((sender, int(f[1])))
                if s:
                    s["libid"] = int(f[2])
            elif t == "PB" and len(f) >= 3:
                pubs[(sender, int(f[1]))] = {"tb": int(f[2]), "rc": None, "inc": inc}
            elif t == "PR" and len(f) >= 5:
                p = pubs.get((sender, int(f[1])))
                if p:
                    p["rc"] = int(f[2])
                    p["libid"] = int(f[3])
    # Later errors (async sends, publications): by library id, within the
    # incarnation that made them.
    for path in sorted(glob.glob(os.path.join(d, "led.*"))):
        sender = os.path.basename(path)[4:]
        inc = -1
        byid = {}
        for line in open(path, errors="replace"):
            f = line.split()
            if not f:
                continue
            if f[0] == "S":
                inc += 1
                byid = {}
            elif f[0] == "I" and len(f) >= 3:
                byid[("s", int(f[2]))] = (sender, int(f[1]))
            elif f[0] == "PR" and len(f) >= 5:
                byid[("p", int(f[3]))] = (sender, int(f[1]))
            elif f[0] == "E" and len(f) >= 5:
                lid = int(f[1])
                if ("s", lid) in byid:
                    s = sends[byid[("s", lid)]]
                    s["async_err"] = f[4]
                elif ("p", lid) in byid:
                    pubs[byid[("p", lid)]]["async_err"] = f[4]
    return sends, pubs, incs


def read_receivers(d):
    recs = []
    for path in sorted(glob.glob(os.path.join(d, "rx.*.rec"))):
        m = re.match(r"rx\.(.+)\.(\d+)\.rec$", os.path.basename(path))
        if not m:
            continue
        r = {"name": m.group(1), "inc": int(m.group(2)), "path": path, "msgs": [], "pubs": [],
             "t_start": None, "t_stop": None, "clean": False, "bound": None}
        for line in open(path, errors="replace"):
            f = line.split()
            if not f:
                continue
            if f[0] == "S":
                r["t_start"] = int(f[2])
            elif f[0] == "BOUND":
                r["bound"] = int(f[2])
            elif f[0] == "T":
                r["t_stop"] = int(f[1])
            elif f[0] == "X":
                r["clean"] = True
                r["t_end"] = int(f[1])
            elif f[0] in ("M", "U") and len(f) >= 6:
                (r["msgs"] if f[0] == "M" else r["pubs"]).append(
                    (f[1], int(f[2]) if f[2].isdigit() else -1, f[3] == "ok", int(f[5])))
        recs.append(r)
    return recs


def read_monitors(d):
    mons = []
    for path in sorted(glob.glob(os.path.join(d, "mon.*.rec"))):
        m = re.match(r"mon\.(.+)\.(\d+)\.rec$", os.path.basename(path))
        if not m:
            continue
        evs = []
        for line in open(path, errors="replace"):
            f = line.split()
            if len(f) >= 6 and f[0] == "EV":
                evs.append({"what": f[1], "dir": f[2], "name": f[3], "node": f[4],
                            "t": int(f[5])})
        mons.append({"host": m.group(1), "inc": int(m.group(2)), "evs": evs})
    return mons


LOST_RE = re.compile(r"^\S+: \(ipc-node\) (\d\d-\d\d-\d\d \d\d:\d\d:\d\d) peer (\S+) \(\S+\) "
                     r"at \S+ lost: (.*)$")


def read_losses(logs):
    out = []
    for host, files in logs.items():
        for path in files:
            if not os.path.exists(path):
                continue
            for line in open(path, errors="replace"):
                m = LOST_RE.match(line.rstrip("\n"))
                if m:
                    t = int(time.mktime(time.strptime(m.group(1), "%y-%m-%d %H:%M:%S"))) * 1000
                    out.append({"host": host, "peer": m.group(2), "t": t, "why": m.group(3)})
    return out


def main():
    a = parse_args(sys.argv[1:])
    d = a["dir"]
    chaos = read_chaos(a["chaos"])
    sends, pubs, incs = read_ledgers(d)
    recs = read_receivers(d)
    mons = read_monitors(d)
    out = []
    fails = []

    def put(k, v):
        out.append((k, v))

    killed_tx = defaultdict(list)       # sender -> [pid]
    killrx = defaultdict(list)          # name -> [t]
    for e in chaos:
        if e["kind"] == "killtx":
            killed_tx[e["target"]].append(int(e["detail"] or 0))
        elif e["kind"] == "killrx":
            killrx[e["target"]].append(e["t0"])
    calm = [e for e in chaos if e["kind"] == "calm"]

    # --- copies read --------------------------------------------------------
    copies = defaultdict(list)          # (sender, seq) -> [(name, inc, t)]
    corrupt = out_of_order = misdelivered = 0
    examples = defaultdict(list)
    for r in recs:
        last = {}
        for sender, seq, good, t in r["msgs"]:
            if not good:
                corrupt += 1
                examples["corrupt"].append("%s: %s %d" % (os.path.basename(r["path"]), sender, seq))
                continue
            copies[(sender, seq)].append((r["name"], r["inc"], t))
            if seq <= last.get(sender, 0):
                out_of_order += 1
                examples["out of order"].append("%s: %s %d after %d" % (
                    os.path.basename(r["path"]), sender, seq, last[sender]))
            last[sender] = max(seq, last.get(sender, 0))
    duplicates = sum(len(v) - 1 for v in copies.values() if len(v) > 1)
    for k, v in copies.items():
        if len(v) > 1:
            examples["duplicate"].append("%s %d read %d times: %s" % (k[0], k[1], len(v), v))
    phantom = [k for k in copies if k not in sends]
    for k in copies:
        s = sends.get(k)
        if s and any(c[0] != s["dest"] for c in copies[k]):
            misdelivered += 1
            examples["misdelivered"].append("%s %d for %s read by %s" % (
                k[0], k[1], s["dest"], copies[k]))

    # --- every message sent ---------------------------------------------------
    n_sent = len(sends)
    delivered = 0
    failed = defaultdict(int)           # reason -> count
    failed_read = defaultdict(int)      # unknown-outcome reason -> of them read
    contradictions = 0
    lost_killed_rx = 0
    killed_in_send = killed_in_send_read = 0
    unaccounted = 0
    confirmed = 0
    for k, s in sorted(sends.items()):
        sender, seq = k
        read = len(copies.get(k, [])) > 0
        err = s["err"]
        if err is None:
            inc = incs[sender][s["inc"]] if 0 <= s["inc"] < len(incs[sender]) else None
            if inc and not inc["clean"] and inc["pid"] in killed_tx[sender]:
                killed_in_send += 1
                killed_in_send_read += read
                if read:
                    delivered += 1
            else:
                unaccounted += 1
                examples["unaccounted"].append("%s %d: begun, no outcome, sender not killed" % k)
            continue
        if err == "OK" and s.get("async_err"):
            err = s["async_err"]        # an async send that failed later
        if err == "OK":
            confirmed += 1
            if read:
                delivered += 1
                continue
            if s.get("libid") is not None and s.get("async_err") is None:
                # async, no error, not read: lost
                pass
            ks = [t for t in killrx.get(s["dest"], []) if s["tb"] <= t <= s["tr"] + 2000]
            if ks and s.get("libid") is None:
                lost_killed_rx += 1
                continue
            unaccounted += 1
            examples["unaccounted"].append("%s %d to %s: %s at %d, never read" % (
                sender, seq, s["dest"], "confirmed" if s.get("libid") is None else
                "sent, no error", s.get("tr", 0)))
            continue
        reason = err
        if err == "ECONNRESET":
            reason = "ECONNRESET(own node lost)" if s["local"] else "ECONNRESET(receiver left)"
        failed[reason] += 1
        unknown = err in ("EHOSTUNREACH", "ETIMEDOUT", "EOTHER") or \
            (err == "ECONNRESET" and s["local"])
        if read:
            delivered += 1
            if unknown:
                failed_read[reason] += 1
            else:
                contradictions += 1
                examples["failed yet read"].append("%s %d to %s: %s (%s), read by %s" % (
                    sender, seq, s["dest"], err, s.get("why", "-"), copies[k]))
    unaccounted += contradictions

    put("sent", n_sent)
    put("confirmed", confirmed)
    put("delivered", delivered)
    for r in sorted(failed):
        put("failed " + r, failed[r])
        if r in failed_read or r.startswith("EHOSTUNREACH") or "own node" in r:
            put("  of which read anyway (allowed: outcome unknown)", failed_read.get(r, 0))
    put("sender killed in its send (outcome unknown)", killed_in_send)
    put("  of which read", killed_in_send_read)
    put("confirmed, then lost in a SIGKILLed receiver (allowed)", lost_killed_rx)
    put("unaccounted", unaccounted)
    put("  of which failed (definite) yet read", contradictions)
    put("duplicates", duplicates)
    put("out of order", out_of_order)
    put("corrupt", corrupt)
    put("misdelivered", misdelivered)
    put("read but never sent", len(phantom))
    for k in ("unaccounted", "duplicates", "out of order", "corrupt", "misdelivered"):
        pass
    if unaccounted:
        fails.append("unaccounted %d" % unaccounted)
    if duplicates:
        fails.append("duplicates %d" % duplicates)
    if out_of_order:
        fails.append("out of order %d" % out_of_order)
    if corrupt:
        fails.append("corrupt %d" % corrupt)
    if misdelivered:
        fails.append("misdelivered %d" % misdelivered)
    if phantom:
        fails.append("read but never sent %d" % len(phantom))
        examples["read but never sent"] = ["%s %d" % k for k in phantom[:5]]

    # --- publications ---------------------------------------------------------
    pub_copies = 0
    pub_dup = pub_ooo = pub_corrupt = pub_phantom = 0
    for r in recs:
        last = {}
        seen = set()
        for sender, pseq, good, t in r["pubs"]:
            if not good:
                pub_corrupt += 1
                continue
            pub_copies += 1
            if (sender, pseq) not in pubs:
                pub_phantom += 1
            if (sender, pseq) in seen:
                pub_dup += 1
                examples["publication duplicate"].append("%s: %s %d" % (r["path"], sender, pseq))
            seen.add((sender, pseq))
            if pseq <= last.get(sender, 0):
                pub_ooo += 1
                examples["publication out of order"].append("%s: %s %d after %d" % (
                    os.path.basename(r["path"]), sender, pseq, last[sender]))
            last[sender] = max(pseq, last.get(sender, 0))
    put("publications sent", len(pubs))
    put("publication copies read", pub_copies)
    put("publication duplicates", pub_dup)
    put("publications out of order", pub_ooo)
    put("publications corrupt", pub_corrupt)
    put("publications read but never sent", pub_phantom)
    for what, n in (("publication duplicates", pub_dup), ("publications out of order", pub_ooo),
                    ("publications corrupt", pub_corrupt),
                    ("publications read but never sent", pub_phantom)):
        if n:
            fails.append("%s %d" % (what, n))

    # --- the calm phase: everything works again -------------------------------
    if calm:
        c0, c1 = calm[-1]["t0"], calm[-1]["t1"]
        calm_sends = [(k, s) for k, s in sends.items() if c0 <= s["tb"] and s.get("tr", 0) <= c1]
        bad = [(k, s) for k, s in calm_sends if s["err"] != "OK" or not copies.get(k)]
        put("calm phase: messages sent", len(calm_sends))
        put("calm phase: not confirmed and read", len(bad))
        for k, s in bad[:5]:
            examples["calm phase"].append("%s %d to %s: %s %s" % (k[0], k[1], s["dest"], s["err"],
                                                                  s.get("why", "")))
        if not calm_sends:
            fails.append("no traffic in the calm phase")
        if bad:
            fails.append("calm phase: %d messages not confirmed and read" % len(bad))
        # Publications of the calm phase (but its last second: they may be
        # on their way when the senders stop) reach every subscriber that
        # was there all along.
        whole = [r for r in recs if r["bound"] is not None and r["bound"] < c0 and
                 r["t_stop"] is not None and r["t_stop"] > c1]
        calm_pubs = [k for k, p in pubs.items() if c0 <= p["tb"] <= c1 - 1000 and p["rc"] == 0]
        missing = 0
        for r in whole:
            got = set((s, q) for s, q, g, t in r["pubs"] if g)
            for k in calm_pubs:
                if k not in got:
                    missing += 1
                    if len(examples["calm publications"]) < 5:
                        examples["calm publications"].append("%s missed %s %d" % (
                            os.path.basename(r["path"]), k[0], k[1]))
        put("calm phase: publications x subscribers", len(calm_pubs) * len(whole))
        put("calm phase: publication copies missing", missing)
        if missing:
            fails.append("calm phase: %d publication copies missing" % missing)

    # --- names back after their node returned ---------------------------------
    back = []
    not_back = []
    starts = sorted(x["t0"] for x in chaos)
    for e in chaos:
        if e["kind"] not in AWAY:
            continue
        # What this event did ends where the next one begins (events do
        # not overlap: each is followed by a settle).
        nxt = min([t for t in starts if t > e["t0"]] or [1 << 62])
        h = e["target"]
        prefix = "rx.%s." % h
        for mon in mons:
            if mon["host"] == h:
                continue
            names = set(ev["name"] for ev in mon["evs"]
                        if ev["what"] == "name" and ev["name"].startswith(prefix))
            for n in sorted(names):
                downs = [ev["t"] for ev in mon["evs"] if ev["what"] == "name" and
                         ev["name"] == n and ev["dir"] == "down" and
                         e["t0"] <= ev["t"] <= min(e["t1"] + GRACE_MS, nxt)]
                if not downs:
                    continue
                ups = [ev["t"] for ev in mon["evs"] if ev["what"] == "name" and
                       ev["name"] == n and ev["dir"] == "up" and max(downs) <= ev["t"] < nxt]
                if ups:
                    back.append((max(0, min(ups) - e["t1"]), e["kind"], h, n, mon["host"]))
                else:
                    not_back.append("%s %s: %s not back on %s (monitor incarnation %d)" % (
                        e["kind"], h, n, mon["host"], mon["inc"]))
    if back:
        worst = max(back)
        put("names back after their node returned: longest ms", worst[0])
        put("  that one", "%s of %s: %s seen again on %s" % (worst[1], worst[2], worst[3],
                                                            worst[4]))
        for kind in sorted(AWAY):
            b = [x[0] for x in back if x[1] == kind]
            if b:
                put("  longest after " + kind + " ms", max(b))
    else:
        put("names back after their node returned: longest ms", "-")
    put("names never seen back", len(not_back))
    examples["names never seen back"] = not_back[:5]

    # --- peer losses ------------------------------------------------------------
    losses = read_losses(a["logs"])
    false_losses = []
    for l in losses:
        excused = False
        for e in chaos:
            if e["kind"] in AWAY and e["target"] in (l["host"], l["peer"]) and \
                    e["t0"] - 1000 <= l["t"] <= e["t1"] + GRACE_MS + 1000:
                excused = True
                break
        if not excused:
            false_losses.append(l)
    put("peer losses logged", len(losses))
    put("false peer losses", len(false_losses))
    for l in false_losses[:10]:
        near = [e["kind"] + " " + e["target"] for e in chaos
                if e["t0"] - 10000 <= l["t"] <= e["t1"] + 10000]
        examples["false peer losses"].append("%s lost %s at %s: %s (chaos near: %s)" % (
            l["host"], l["peer"], time.strftime("%H:%M:%S", time.localtime(l["t"] / 1000)),
            l["why"], ", ".join(near) or "none"))
    if false_losses:
        fails.append("false peer losses %d" % len(false_losses))

    # --- clients ------------------------------------------------------------------
    rx_unclean = [r for r in recs if not r["clean"] and
                  not any(r["t_start"] is not None and t >= r["t_start"]
                          for t in killrx.get(r["name"], []))]
    put("receivers that ended uncleanly, not killed", len(rx_unclean))
    if rx_unclean:
        fails.append("receivers died: " + " ".join(os.path.basename(r["path"]) for r in rx_unclean))

    w = max(len(k) for k, v in out) if out else 0
    for k, v in out:
        print("%-*s %s" % (w, k, v))
    for what, ex in examples.items():
        for x in ex[:5]:
            print("# %s: %s" % (what, x))
    if fails:
        print("verdict FAIL " + "; ".join(fails))
        return 1
    print("verdict ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
