"""The platform's side of the step agent: one agent per module run, in or out of bwrap.

Starting one process per module run (not one bwrap per step) keeps the sandbox's
cost to one start per run (``bench/runner_overhead.py``). Each step's output pipe
and exit pipe are made here and handed to the agent over the control socket, so
the runner reads output and waits for exits exactly as with a local child.
"""

from __future__ import annotations

import contextlib
import functools
import json
import marshal
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from workmill.errors import WorkmillError
from workmill.sandbox._mode import SandboxChoice
from workmill.sandbox._policy import SYSTEM_DIRS, SandboxPolicy, bwrap_argv

AGENT_FILE = Path(__file__).with_name("_agent.py")
AGENT_INSIDE = "/run/workmill/agent.py"
START_TIMEOUT = 30.0
AGENT_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"}


MAX_ANSWER = 4096


class SandboxError(WorkmillError):
    """The sandbox (or the step agent) could not be started or stopped talking."""


def send_request(sock: socket.socket, req: dict, fds: tuple[int, ...] = ()) -> None:
    """One request to the agent (see ``_agent.py``): length, marshal body, fds on byte one."""
    body = marshal.dumps(req)
    data = len(body).to_bytes(8, "big") + body
    sent = socket.send_fds(sock, [data], list(fds)) if fds else sock.send(data)
    if sent < len(data):
        sock.sendall(data[sent:])


def read_answer(sock: socket.socket) -> dict | None:
    """The agent's next answer (untrusted: small JSON object or None)."""
    head = b""
    while len(head) < 8:
        chunk = sock.recv(8 - len(head))
        if not chunk:
            return None
        head += chunk
    size = int.from_bytes(head, "big")
    if size > MAX_ANSWER:
        return None
    body = b""
    while len(body) < size:
        chunk = sock.recv(size - len(body))
        if not chunk:
            return None
        body += chunk
    try:
        got = json.loads(body)
    except ValueError:
        return None
    return got if isinstance(got, dict) else None


def parse_exit_report(data: bytes) -> tuple[int, bool, bool]:
    """(exit code, session alive, run alive) from the agent's ``"CODE GROUP RUN"``
    (untrusted: anything else is -9 with both alive)."""
    parts = data.split()
    if len(parts) != 3 or not {parts[1], parts[2]} <= {b"0", b"1"}:
        return -9, True, True
    try:
        return int(parts[0]), parts[1] == b"1", parts[2] == b"1"
    except ValueError:
        return -9, True, True


@dataclass
class StepHandle:
    """A started step: its pid as the agent sees it, and the read end of its exit pipe."""

    pid: int
    exit_fd: int
    exit_code: int | None = None
    # from the agent's exit report; True (assume the worst) when it said nothing usable
    group_alive: bool = True  # a process is left in the step's session
    run_alive: bool = True  # a process of the run other than the agent is left

    def read_exit(self) -> int:
        """The step's exit code (negative: killed by that signal); call once exit_fd is ready."""
        if self.exit_code is None:
            data = b""
            with contextlib.suppress(OSError):
                data = os.read(self.exit_fd, 64)
            self.exit_code, self.group_alive, self.run_alive = parse_exit_report(data)
        return self.exit_code

    def close(self) -> None:
        if self.exit_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.exit_fd)
            self.exit_fd = -1


@functools.cache
def _python_paths() -> tuple[str, ...]:
    """Where the Python the steps use lives, when outside the system folders (once per
    process: every module run binds them)."""
    out: list[str] = []
    for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        real = os.path.realpath(p)
        if not any(real == d or real.startswith(d + "/") for d in SYSTEM_DIRS):
            out.append(real)
            if p != real:
                out.append(p)
    return tuple(sorted(set(out)))


def python_paths() -> list[str]:
    """Where the Python the steps use lives, when outside the system folders."""
    return list(_python_paths())


def _exists(paths: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted({p for p in paths if os.path.exists(p)}))


class StepLauncher:
    """Starts steps through a step agent; thread-safe for one module run."""

    def __init__(
        self,
        choice: SandboxChoice,
        *,
        read_only: Sequence[str] = (),
        writable: Sequence[str] = (),
        network: bool = True,
        cwd: str = "/",
        fsize_limit: int = 0,
        stderr_path: Path | None = None,
        agent_env: Mapping[str, str] | None = None,
    ) -> None:
        self.choice = choice
        self.read_only = _exists([*read_only, *python_paths()])
        self.writable = _exists(writable)
        self.network = network
        self.cwd = cwd
        self.fsize_limit = fsize_limit
        self.stderr_path = stderr_path
        self.agent_env = dict(AGENT_ENV if agent_env is None else agent_env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.ready = False
        self.lock = threading.Lock()

    @property
    def mode(self) -> str:
        return self.choice.mode

    def policy(self, control_fd: int) -> SandboxPolicy:
        """The bwrap policy of this run (the agent is its only command)."""
        return SandboxPolicy(
            command=self._agent_argv(AGENT_INSIDE, control_fd),
            env=self.agent_env,
            read_only=self.read_only,
            writable=self.writable,
            files=((str(AGENT_FILE), AGENT_INSIDE),),
            cwd=self.cwd,
            network=self.network,
        )

    def _agent_argv(self, agent: str, control_fd: int) -> tuple[str, ...]:
        return (
            sys.executable,
            "-I",
            "-S",
            "-B",
            agent,
            str(control_fd),
            self.choice.mode,
            str(self.fsize_limit),
            str(os.getpid()),
        )

    @property
    def config(self) -> tuple:
        """Everything that decides what the run's sandbox is (a pre-started launcher is
        used only for a run whose launcher would have the very same config)."""
        return (
            self.choice,
            self.read_only,
            self.writable,
            self.network,
            self.cwd,
            self.fsize_limit,
            self.stderr_path,
            tuple(sorted(self.agent_env.items())),
        )

    def start(self) -> None:
        """Start the agent and wait until it answers; raises SandboxError if it cannot."""
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the agent without waiting for it, so it can come up while the platform
        does other work (docs/architecture.md "Threat model": a pre-started sandbox)."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        fd = child.fileno()
        if self.choice.mode == "bwrap":
            assert self.choice.bwrap is not None
            argv = bwrap_argv(self.policy(fd), self.choice.bwrap)
            env: dict[str, str] = {}
        else:
            argv = list(self._agent_argv(str(AGENT_FILE), fd))
            env = dict(self.agent_env)
        err = open(self.stderr_path, "ab") if self.stderr_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                env=env,
                cwd=self.cwd if self.choice.mode == "none" else "/",
                pass_fds=(fd,),
                start_new_session=True,
            )
        except OSError as exc:
            parent.close()
            raise SandboxError(f"could not start the step agent: {exc.strerror}") from exc
        finally:
            child.close()
            if err is not subprocess.DEVNULL:
                err.close()
        self.sock = parent

    def wait_ready(self) -> None:
        """Wait for the launched agent's hello; raises SandboxError if none comes."""
        if self.ready:
            return
        if self.sock is None:
            raise SandboxError("the step agent is not running")
        ready, _, _ = select.select([self.sock], [], [], START_TIMEOUT)
        hello = self._reply() if ready else None
        if not hello or not hello.get("ready"):
            self.close()
            raise SandboxError(f"the {self.choice.mode} sandbox did not start: {self._why()}")
        self.ready = True

    def _why(self) -> str:
        if self.stderr_path and self.stderr_path.exists():
            lines = self.stderr_path.read_text("utf-8", "replace").strip().splitlines()
            if lines:
                return lines[-1]
        code = self.proc.poll() if self.proc else None
        return f"exit code {code}" if code is not None else "no answer"

    def _reply(self) -> dict | None:
        assert self.sock is not None
        try:
            return read_answer(self.sock)
        except OSError:
            return None

    def _ask(self, req: dict, fds: tuple[int, ...] = (), *, reply: bool = True) -> dict:
        self.wait_ready()
        with self.lock:
            if self.sock is None:
                raise SandboxError("the step agent is not running")
            try:
                send_request(self.sock, req, fds)
            except OSError as exc:
                raise SandboxError(f"the step agent stopped: {exc.strerror}") from exc
            if not reply:
                return {}
            got = self._reply()
        if got is None:
            raise SandboxError("the step agent stopped answering")
        return got

    def spawn(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: str, out_fd: int
    ) -> StepHandle:
        """Start one step with stdout+stderr to ``out_fd``; raises SandboxError if it cannot."""
        exit_r, exit_w = os.pipe()
        try:
            got = self._ask(
                {"op": "spawn", "argv": list(argv), "env": dict(env), "cwd": cwd},
                (out_fd, exit_w),
            )
        finally:
            os.close(exit_w)
        if "pid" not in got:
            os.close(exit_r)
            raise SandboxError(str(got.get("error", "the step did not start")))
        return StepHandle(int(got["pid"]), exit_r)

    def signal(self, handle: StepHandle, sig: int) -> None:
        with contextlib.suppress(SandboxError):
            self._ask({"op": "signal", "pid": handle.pid, "sig": int(sig)}, reply=False)

    def stop(self, grace: float) -> None:
        """SIGTERM every process of the run, SIGKILL what is left after ``grace``."""
        with contextlib.suppress(SandboxError):
            self._ask({"op": "stop", "grace": grace})

    def close(self) -> None:
        """End the run: the agent kills whatever is left and exits (bwrap takes the rest).

        Returns once every process holding the control socket is gone (end of file on
        it), so nothing of the run writes after the outputs are checked."""
        with self.lock:
            sock, self.sock = self.sock, None
        ended = False
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
                end = time.monotonic() + 10
                while not ended and (left := end - time.monotonic()) > 0:
                    ready, _, _ = select.select([sock], [], [], left)
                    ended = bool(ready) and not sock.recv(4096)
            sock.close()
        if self.proc is not None:
            try:  # after end of file the agent is exiting: no polling wait needed
                self.proc.wait(timeout=None if ended else 10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.proc = None
