"""The step agent: the one process a module run starts; it starts the run's steps.

Run as ``python -I -S _agent.py CONTROL_FD MODE FSIZE`` (stdlib only, so it
starts in milliseconds and imports nothing from the platform). Under bwrap it
is the sandbox's command; with ``sandbox: none`` it runs plainly. The platform
sends it requests over the control socket (one JSON object per message, file
descriptors attached with SCM_RIGHTS):

- ``{"op": "spawn", "argv", "env", "cwd"}`` + fds ``[output, exit]``: start a
  step in its own session (stdin /dev/null, stdout+stderr to ``output``); when
  it exits its exit code is written to ``exit`` as text and ``exit`` closed.
  Reply ``{"pid": N}`` or ``{"error": "..."}``.
- ``{"op": "signal", "pid", "sig"}``: signal that step's process group.
- ``{"op": "alive", "pid"}``: reply ``{"alive": bool}`` (is the group alive).
- ``{"op": "stop", "grace"}``: SIGTERM every process of the run, SIGKILL what
  is left after ``grace`` seconds; reply ``{"stopped": true}``.

End of file on the socket (the run is over, or the platform died) stops every
process of the run and exits. In ``bwrap`` mode the run's processes are all the
other processes of the PID namespace; in ``none`` mode the agent is a child
subreaper, so double-forked daemons become its children, and it has
``PR_SET_PDEATHSIG`` set. See docs/architecture.md "Threat model".
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import select
import signal
import socket
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
MAX_MESSAGE = 1 << 28


def _prctl(option: int, value: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


class Agent:
    def __init__(self, sock: socket.socket, mode: str) -> None:
        self.sock = sock
        self.mode = mode
        self.exit_fds: dict[int, int] = {}  # step pid -> write end of its exit pipe
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.signal(signal.SIGCHLD, lambda *_: _poke(self.wake_w))

    # ------------------------------------------------------------ processes

    def others(self) -> list[int]:
        """Every process of this run except the agent (and the namespace's init)."""
        me = os.getpid()
        table = _process_table()
        if self.mode == "bwrap":
            return [p for p in table if p not in (1, me)]
        out, frontier = [], {me}
        while frontier:
            frontier = {p for p, pp in table.items() if pp in frontier and p != me}
            out += sorted(frontier)
        return out

    def signal_all(self, sig: int) -> None:
        for pid in self.others():
            with contextlib.suppress(OSError):
                os.kill(pid, sig)

    def stop(self, grace: float) -> None:
        self.signal_all(signal.SIGTERM)
        end = time.monotonic() + grace
        while self.reap() or (self.others() and time.monotonic() < end):
            time.sleep(0.01)
        # a fork racing the kill is caught by the next pass
        for _ in range(50):
            if not self.others():
                break
            self.signal_all(signal.SIGKILL)
            time.sleep(0.01)
            self.reap()

    def reap(self) -> bool:
        """Collect exited children; True while any is left to collect."""
        got = False
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return got
            if pid == 0:
                return got
            got = True
            fd = self.exit_fds.pop(pid, None)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.write(fd, str(os.waitstatus_to_exitcode(status)).encode())
                os.close(fd)

    # ------------------------------------------------------------ requests

    def spawn(self, req: dict, fds: list[int]) -> dict:
        out_fd, exit_fd = fds
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(out_fd)
            os.close(exit_fd)
            return {"error": f"fork failed: {exc.strerror}"}
        if pid == 0:  # the step
            _exec_step(req, out_fd)
        os.close(out_fd)
        self.exit_fds[pid] = exit_fd
        return {"pid": pid}

    def handle(self, req: dict, fds: list[int]) -> dict | None:
        op = req.get("op")
        if op == "spawn" and len(fds) == 2:
            return self.spawn(req, fds)
        for fd in fds:
            os.close(fd)
        if op == "signal":
            with contextlib.suppress(OSError):
                os.killpg(int(req["pid"]), int(req["sig"]))
            return None
        if op == "alive":
            try:
                os.killpg(int(req["pid"]), 0)
                return {"alive": True}
            except OSError:
                return {"alive": False}
        if op == "stop":
            self.stop(float(req.get("grace", 5)))
            return {"stopped": True}
        return {"error": f"unknown request {op!r}"}

    def serve(self) -> None:
        send_message(self.sock, {"ready": True})
        while True:
            ready, _, _ = select.select([self.sock, self.wake_r], [], [])
            if self.wake_r in ready:
                with contextlib.suppress(BlockingIOError, OSError):
                    os.read(self.wake_r, 512)
                self.reap()
            if self.sock in ready:
                try:
                    req, fds = read_message(self.sock)
                except (OSError, ValueError):
                    req, fds = None, []
                if req is None:
                    for fd in fds:
                        os.close(fd)
                    return
                reply = self.handle(req, fds)
                if reply is not None:
                    send_message(self.sock, reply)


def send_message(sock: socket.socket, obj: dict, fds: tuple[int, ...] = ()) -> None:
    """One length-prefixed JSON message; ``fds`` ride on its first byte (SCM_RIGHTS)."""
    body = json.dumps(obj).encode()
    data = len(body).to_bytes(8, "big") + body
    sent = socket.send_fds(sock, [data], list(fds)) if fds else sock.send(data)
    if sent < len(data):
        sock.sendall(data[sent:])


def read_message(sock: socket.socket) -> tuple[dict | None, list[int]]:
    """The next message and the fds that came with it; (None, fds) at end of file."""
    head, fds = b"", []
    while len(head) < 8:
        data, got, _flags, _addr = socket.recv_fds(sock, 8 - len(head), 4)
        fds += got
        if not data:
            return None, fds
        head += data
    size = int.from_bytes(head, "big")
    if size > MAX_MESSAGE:
        raise ValueError("message too large")
    body = bytearray()
    while len(body) < size:
        chunk = sock.recv(min(size - len(body), 1 << 20))
        if not chunk:
            return None, fds
        body += chunk
    return json.loads(body), fds


def _poke(fd: int) -> None:
    with contextlib.suppress(BlockingIOError, OSError):
        os.write(fd, b"x")


def _exec_step(req: dict, out_fd: int) -> None:
    """In the forked child: become the step (never returns)."""
    try:
        os.setsid()
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.closerange(3, 65536)
        os.chdir(req["cwd"])
        argv = [str(a) for a in req["argv"]]
        os.execvpe(argv[0], argv, {str(k): str(v) for k, v in req["env"].items()})
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.write(2, f"workmill: could not start the step: {exc}\n".encode())
    os._exit(127)


def _process_table() -> dict[int, int]:
    """Live (not zombie) processes visible in /proc, each with its parent pid."""
    parent: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if fields and fields[0] not in (b"Z", b"X"):
            parent[int(name)] = int(fields[1])
    return parent


def main(argv: list[str]) -> int:
    control_fd, mode, fsize = int(argv[1]), argv[2], int(argv[3])
    sock = socket.socket(fileno=control_fd)
    if mode == "none":
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if fsize > 0:  # no file a step writes may grow past the output cap
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    agent = Agent(sock, mode)
    signal.signal(signal.SIGTERM, lambda *_: (agent.stop(0.0), os._exit(1)))
    signal.signal(signal.SIGHUP, lambda *_: (agent.stop(0.0), os._exit(1)))
    if mode == "none" and os.getppid() != int(argv[4]):  # the platform died before prctl
        agent.stop(0.0)
        return 1
    try:
        agent.serve()
    finally:
        agent.stop(0.0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
