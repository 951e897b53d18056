"""The step agent: the one process a module run starts; it starts the run's steps.

Run as ``python -I -S _agent.py CONTROL_FD MODE FSIZE PLATFORM_PID``. It imports
only built-in modules (``_socket``, ``_signal``, ``marshal``…, not ``socket``,
``json`` or ``signal``, whose imports cost more than the rest of a module run),
and nothing from the platform or the module folder. Under bwrap it is the
sandbox's command; with ``sandbox: none`` it runs plainly.

Protocol on the control socket (a stream; every message is an 8-byte big-endian
length and a body). The platform sends ``marshal`` dicts (file descriptors
attached with SCM_RIGHTS); the agent answers with small ASCII JSON objects,
which the platform parses as untrusted text:

- ``{"op": "spawn", "argv", "env", "cwd"}`` + fds ``[output, exit]``: start a
  step in its own session (stdin /dev/null, stdout+stderr to ``output``); when
  it exits, ``"CODE GROUP RUN"`` is written to ``exit`` as text and ``exit``
  closed: its exit code, 1 if its session still has a process (else 0), 1 if
  any other process of the run is left (else 0), so the platform needs no
  further question after a step. Answer ``{"pid": N}`` or ``{"error": "..."}``.
- ``{"op": "signal", "pid", "sig"}``: signal that step's process group (no answer).
- ``{"op": "stop", "grace"}``: SIGTERM every process of the run, SIGKILL what is
  left after ``grace`` seconds; answer ``{"stopped": true}``.

End of file on the socket (the run is over, or the platform died) stops every
process of the run and exits. Under bwrap the run's processes are all the other
processes of the PID namespace; with ``sandbox: none`` the agent is a child
subreaper, so double-forked daemons become its children, and it has
``PR_SET_PDEATHSIG`` set (docs/architecture.md "Threat model").
"""

# try/except/pass instead of contextlib.suppress: importing contextlib costs more than
# the rest of the agent's start-up
# ruff: noqa: SIM105

from __future__ import annotations

import _signal
import _socket
import marshal
import os
import resource
import select
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
MAX_MESSAGE = 1 << 28
SIGTERM, SIGKILL, SIGCHLD, SIGHUP = (
    _signal.SIGTERM,
    _signal.SIGKILL,
    _signal.SIGCHLD,
    _signal.SIGHUP,
)


def _prctl(option: int, value: int) -> None:
    """prctl(2) through ``_ctypes`` alone: only ``sandbox: none`` needs it, and importing
    the ``ctypes`` package costs as much as the rest of the agent's start."""
    try:
        import _ctypes

        class _Int(_ctypes._SimpleCData):
            _type_ = "i"

        class _Func(_ctypes.CFuncPtr):
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
            _restype_ = _Int

        class _Libc:
            _handle = _ctypes.dlopen(None, 0)

        _Func(("prctl", _Libc()))(option, value, 0, 0, 0)
    except (OSError, AttributeError, ImportError, TypeError):
        pass


def _ascii(text: str) -> str:
    return "".join(c if c.isalnum() or c in " .,:;_-()/'" else "?" for c in text)[:300]


class Agent:
    def __init__(self, sock: _socket.socket, mode: str) -> None:
        self.sock = sock
        self.mode = mode
        self.exit_fds: dict[int, int] = {}  # step pid -> write end of its exit pipe
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        _signal.signal(SIGCHLD, lambda *_: _poke(self.wake_w))

    # ------------------------------------------------------------ processes

    def others(self) -> list[int]:
        """Every live process of this run except the agent (and the namespace's init)."""
        me = os.getpid()
        if self.mode == "bwrap":
            pids = [int(n) for n in os.listdir("/proc") if n.isdigit()]
            return [p for p in pids if p not in (1, me) and _live(p)]
        return _descendants(me)

    def signal_all(self, sig: int) -> None:
        for pid in self.others():
            try:
                os.kill(pid, sig)
            except OSError:
                pass

    def stop(self, grace: float) -> None:
        if not self.others():
            self.reap()
            return
        self.signal_all(SIGTERM)
        end = time.monotonic() + grace
        while self.reap() or (self.others() and time.monotonic() < end):
            time.sleep(0.01)
        for _ in range(100):  # a fork racing the kill is caught by the next pass
            if not self.others():
                break
            self.signal_all(SIGKILL)
            time.sleep(0.01)
            self.reap()

    def reap(self) -> bool:
        """Collect exited children; True when any was collected."""
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
                try:
                    os.write(fd, self.exit_report(pid, status))
                except OSError:
                    pass
                os.close(fd)

    def exit_report(self, pid: int, status: int) -> bytes:
        """What the exit pipe says: the exit code, whether the step's session still has a
        process, and whether any process of the run is left (``"0 0 0"``)."""
        try:
            os.killpg(pid, 0)
            group = 1
        except OSError:
            group = 0
        run = 1 if group or self.others() else 0
        return f"{os.waitstatus_to_exitcode(status)} {group} {run}".encode()

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
            try:
                os.killpg(int(req["pid"]), int(req["sig"]))
            except OSError:
                pass
            return None
        if op == "stop":
            self.stop(float(req.get("grace", 5)))
            return {"stopped": True}
        return {"error": f"unknown request {_ascii(str(op))}"}

    def serve(self, platform_pid: int) -> None:
        _send(self.sock, {"ready": True})
        if self.mode == "none":
            # after the answer, so the platform prepares the first step meanwhile; before
            # any step starts, as requests are handled only after this
            _prctl(PR_SET_CHILD_SUBREAPER, 1)
            _prctl(PR_SET_PDEATHSIG, SIGTERM)
            if os.getppid() != platform_pid:  # the platform died before the prctl
                return
        while True:
            ready, _, _ = select.select([self.sock, self.wake_r], [], [])
            if self.wake_r in ready:
                try:
                    os.read(self.wake_r, 512)
                except OSError:
                    pass
                self.reap()
            if self.sock in ready:
                try:
                    req, fds = _read(self.sock)
                except (OSError, ValueError, EOFError, TypeError):
                    req, fds = None, []
                if req is None:
                    for fd in fds:
                        os.close(fd)
                    return
                reply = self.handle(req, fds)
                if reply is not None:
                    _send(self.sock, reply)


def _json(obj: dict) -> bytes:
    """The few answers the agent gives, as ASCII JSON (no json import)."""
    parts = []
    for key, value in obj.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int):
            text = str(value)
        else:
            text = '"' + _ascii(str(value)) + '"'
        parts.append(f'"{key}": {text}')
    return ("{" + ", ".join(parts) + "}").encode()


def _send(sock: _socket.socket, obj: dict) -> None:
    body = _json(obj)
    sock.sendall(len(body).to_bytes(8, "big") + body)


def _recv_fds(sock: _socket.socket, size: int, maxfds: int) -> tuple[bytes, list[int]]:
    """recvmsg with SCM_RIGHTS (what socket.recv_fds does, without importing array)."""
    fds: list[int] = []
    data, anc, _flags, _addr = sock.recvmsg(size, _socket.CMSG_LEN(maxfds * 4))
    for level, kind, payload in anc:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            for i in range(0, len(payload) - len(payload) % 4, 4):
                fds.append(int.from_bytes(payload[i : i + 4], sys.byteorder, signed=True))
    return data, fds


def _read(sock: _socket.socket) -> tuple[dict | None, list[int]]:
    """The next request and the fds that came with it; (None, fds) at end of file."""
    head, fds = b"", []
    while len(head) < 8:
        data, got = _recv_fds(sock, 8 - len(head), 4)
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
    req = marshal.loads(bytes(body))
    if not isinstance(req, dict):
        raise ValueError("a request is a dict")
    return req, fds


def _poke(fd: int) -> None:
    try:
        os.write(fd, b"x")
    except OSError:
        pass


def _exec_step(req: dict, out_fd: int) -> None:
    """In the forked child: become the step (never returns)."""
    try:
        os.setsid()
        for sig in (SIGCHLD, SIGTERM, _signal.SIGPIPE, SIGHUP):
            _signal.signal(sig, _signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.closerange(3, 65536)
        os.chdir(req["cwd"])
        argv = [str(a) for a in req["argv"]]
        os.execvpe(argv[0], argv, {str(k): str(v) for k, v in req["env"].items()})
    except BaseException as exc:
        try:
            os.write(2, f"workmill: could not start the step: {exc}\n".encode())
        except OSError:
            pass
    os._exit(127)


def _live(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] not in (b"Z", b"X")


def _children(pid: int) -> list[int] | None:
    """Children of ``pid`` from /proc/<pid>/task/*/children; None where the kernel lacks it."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                out += [int(x) for x in fh.read().split()]
        except FileNotFoundError:
            return None
        except OSError:
            continue
    return out


def _descendants(root: int) -> list[int]:
    """Live processes below ``root``: the children files, else a scan of /proc by parent."""
    out: list[int] = []
    todo = [root]
    while todo:
        kids = _children(todo.pop())
        if kids is None:
            return _descendants_by_scan(root)
        for k in kids:
            if _live(k):
                out.append(k)
            todo.append(k)
    return out


def _descendants_by_scan(root: int) -> list[int]:
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
    out, frontier = [], {root}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier and p != root}
        out += sorted(frontier)
    return out


def main(argv: list[str]) -> None:
    control_fd, mode, fsize, platform_pid = int(argv[1]), argv[2], int(argv[3]), int(argv[4])
    sock = _socket.socket(fileno=control_fd)
    if fsize > 0:  # no file a step writes may grow past the output cap
        try:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        except (ValueError, OSError):
            pass
    agent = Agent(sock, mode)

    def die(*_: object) -> None:
        agent.stop(0.0)
        os._exit(1)

    _signal.signal(SIGTERM, die)
    _signal.signal(SIGHUP, die)
    try:
        agent.serve(platform_pid)
    finally:
        agent.stop(0.0)
    os._exit(0)  # no interpreter teardown: the platform is waiting for this exit


if __name__ == "__main__":
    main(sys.argv)
