"""Real ipc-node processes for the tests: each in a temporary directory of
its own (socket, state, log), on loopback, stopped by its pid.

$IPC_NODE is the node to run (make check sets it). Every wait is bounded;
TEST_TIMEOUT_SCALE multiplies the bounds, as in the C tests.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Optional, Sequence, TypeVar

import ipcnet

SCALE = max(1, min(100, int(os.environ.get("TEST_TIMEOUT_SCALE", "1") or 1)))
START_S = 10 * SCALE        # for a node to accept on its socket
WAIT_S = 5 * SCALE          # for what must come
QUIET_S = 0.3               # for what must not
CLUSTER = f"pytest-{os.getpid()}"   # nodes of other test runs never meet ours

T = TypeVar("T")


def binary() -> str:
    node = os.environ.get("IPC_NODE", "")
    if not node:
        raise RuntimeError("set IPC_NODE to the ipc-node to test")
    return node


def _die_with_parent() -> None:
    # The node dies with the test (as the C harness's PR_SET_PDEATHSIG).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG


def until(what: str, fn: Callable[[], Optional[T]], timeout: float = WAIT_S,
          every: float = 0.05) -> T:
    """fn() until it returns something true, at most timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:.1f} s: {what}")
        time.sleep(every)


class Node:
    """One ipc-node: start(), port(), crash() (SIGKILL), stop() (SIGTERM),
    start() again in the same directory, cleanup()."""

    def __init__(self, name: str = "pynode", extra: Sequence[str] = ()):
        self.name = name
        self.extra = list(extra)
        self.dir = tempfile.mkdtemp(prefix="ipcnet-py-")
        self.sock = os.path.join(self.dir, "node.sock")
        self.log = os.path.join(self.dir, "node.log")
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def start(self, extra: Sequence[str] = ()) -> "Node":
        args = [binary(), "--socket", self.sock, "--name", self.name, "--state-dir", self.dir,
                "--bind", "127.0.0.1", "--port", "0", "--no-mdns", "--no-drop",
                "--cluster", CLUSTER, *self.extra, *extra]
        # PR_SET_PDEATHSIG follows the thread that forks, not the process:
        # a node started from another thread would die with that thread.
        main = threading.current_thread() is threading.main_thread()
        env = dict(os.environ)
        if env.pop("IPCNET_TEST_PRELOADED", None):
            env.pop("LD_PRELOAD", None)     # for Python's sake, not the node's
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env,
                                         preexec_fn=_die_with_parent if main else None)
        deadline = time.monotonic() + START_S
        while not self._accepts():
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError(f"ipc-node exited at start:\n{self.log_text()}")
            if time.monotonic() >= deadline:
                self.crash()
                raise RuntimeError(f"ipc-node did not accept within {START_S} s:\n"
                                   f"{self.log_text()}")
            time.sleep(0.01)
        return self

    def _accepts(self) -> bool:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.sock)
            return True
        except OSError:
            return False
        finally:
            s.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def connect(self, label: Optional[str] = None, **kw: bool) -> ipcnet.Client:
        return ipcnet.connect(self.sock, label=label, **kw)

    def port(self) -> int:
        """Its TCP port, from the first row of its peers (itself)."""
        with self.connect("port-probe") as c:
            me = c.query_peers()[0]
        assert me["source"] == "self", me
        return int(me["address"].rsplit(":", 1)[1])

    def node_id(self) -> str:
        with self.connect("id-probe") as c:
            return c.query_peers()[0]["id"]

    def _reap(self, sig: int, wait: float) -> None:
        if self.proc is None:
            return
        try:
            os.kill(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def crash(self) -> None:
        """SIGKILL, and reaped."""
        self._reap(signal.SIGKILL, 5)

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 5 s), and reaped. A node that had exited
        by itself is a failure of the node: its log is printed."""
        if self.proc is not None and self.proc.poll() is not None:
            log(f"ipc-node {self.name} (pid {self.proc.pid}) had exited by itself, "
                f"status {self.proc.returncode}; its log:\n{self.log_text()}")
        self._reap(signal.SIGTERM, 5 * SCALE)

    def log_text(self) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return "(no log)"

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def peer_up(a: Node, b_name: str) -> bool:
    with a.connect("peers-probe") as c:
        return any(r["name"] == b_name and r["state"] == "up" for r in c.query_peers()[1:])


def recv(c: ipcnet.Client, timeout: float = WAIT_S) -> ipcnet.Message:
    """The next message on c, which must come within timeout."""
    m = c.recv(timeout)
    if m is None:
        raise AssertionError(f"no message within {timeout} s on {c!r}")
    return m


def recv_kind(c: ipcnet.Client, kind: ipcnet.Kind, timeout: float = WAIT_S) -> ipcnet.Message:
    """The next message of that kind (others before it are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        m = c.recv(max(0.0, deadline - time.monotonic()))
        if m is None:
            raise AssertionError(f"no {kind.name} within {timeout} s on {c!r}")
        if m.kind == kind:
            return m


def log(*args: object) -> None:
    print(*args, file=sys.stderr)
