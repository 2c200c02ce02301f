"""Fork server: import torch and transformers once, then fork one child per job.

Importing torch, transformers and PEFT costs seconds of CPU time per process. The
runner keeps one `python -m worker serve` process alive and sends it a request to fork a child
for each job, so a job starts in milliseconds and the import cost is paid once per
runner. Each child is an ordinary `run` process in every other respect: it has its
own memory, it exits when the job ends, and nothing it allocates survives it.

Protocol, one JSON object per line:

- stdin (runner to server): {"id": str, "spec": path, "events": path, "logs": path}.
  `events` and `logs` are Unix socket paths the runner listens on; the child connects
  to both and uses them as its stdout and stderr.
- stdout (server to runner): {"ready": true, "importSeconds": float} once, then
  {"id", "pid"} after each fork, {"id", "error"} when a fork fails, and
  {"id", "pid", "code", "signal"} when a child exits (code is null when a signal
  killed it).

The server exits when stdin closes, so a runner that dies takes it along; children
get SIGKILL when the server dies (Linux parent-death signal).

Forking after importing torch is safe because the server itself runs no tensor
operation and initializes no CUDA context: thread pools and the GPU context are
created lazily in the child, after the fork.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

from .process import configure_offline_environment, take_stdout_for_events

_PR_SET_PDEATHSIG = 1
# Seconds between checks for exited children while stdin is idle.
_REAP_INTERVAL_SECONDS = 0.05


def serve() -> int:
    """Run the fork server until stdin closes; return the exit code."""
    configure_offline_environment()
    # Anything the libraries print while importing goes to stderr, never into the protocol.
    out = take_stdout_for_events()
    start = time.monotonic()
    _preload()
    _send(out, {"ready": True, "importSeconds": round(time.monotonic() - start, 3)})

    children: dict[int, str] = {}
    buffer = b""
    stdin_fd = sys.stdin.fileno()
    server_pid = os.getpid()
    while True:
        readable, _, _ = select.select([stdin_fd], [], [], _REAP_INTERVAL_SECONDS)
        if readable:
            chunk = os.read(stdin_fd, 65536)
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    _handle_request(line, out, children, server_pid)
        _reap(out, children)

    # The runner is gone: stop the jobs it can no longer hear from.
    for pid in list(children):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in list(children):
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    return 0


def _preload() -> None:
    """Import what every job needs, without running anything that starts threads."""
    import peft  # noqa: F401
    import torch  # noqa: F401
    import transformers
    import lm_eval.evaluator  # noqa: F401  (the harness takes seconds to import)

    from . import cli, evaluate, events, finetune, runtime, spec  # noqa: F401

    transformers.utils.logging.disable_progress_bar()


def _send(out: TextIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _handle_request(line: bytes, out: TextIO, children: dict[int, str], server_pid: int) -> None:
    try:
        request = json.loads(line)
        job_id = str(request["id"])
        spec_path, events_path, logs_path = str(request["spec"]), str(request["events"]), str(request["logs"])
    except (ValueError, KeyError, TypeError) as error:
        _send(out, {"id": None, "error": f"invalid request ({error}): {line[:200]!r}"})
        return
    try:
        pid = os.fork()
    except OSError as error:
        _send(out, {"id": job_id, "error": f"fork failed: {error}"})
        return
    if pid == 0:
        # The child must not hold the protocol pipe: a stray write would corrupt it.
        os.close(out.fileno())
        os._exit(_run_child(spec_path, events_path, logs_path, server_pid))
    children[pid] = job_id
    _send(out, {"id": job_id, "pid": pid})


def _run_child(spec_path: str, events_path: str, logs_path: str, server_pid: int) -> int:
    """Become a `run` process with the runner's sockets as stdout and stderr."""
    code = 1
    try:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        _die_with_parent(server_pid)
        events = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        events.connect(events_path)
        logs = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        logs.connect(logs_path)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(events.fileno(), 1)
        os.dup2(logs.fileno(), 2)
        for fd in (devnull, events.detach(), logs.detach()):
            if fd > 2:
                os.close(fd)
        sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process
        sys.stdout = os.fdopen(1, "w", buffering=1, encoding="utf-8")
        sys.stderr = os.fdopen(2, "w", buffering=1, encoding="utf-8")

        from .cli import run_job

        code = run_job(Path(spec_path))
    except BaseException:  # noqa: BLE001 - a child must never return into the server loop
        try:
            traceback.print_exc()
        except BaseException:  # noqa: BLE001
            pass
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001
                pass
    return code


def _die_with_parent(server_pid: int) -> None:
    """Ask Linux to SIGKILL this child when the server dies; a no-op elsewhere."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    # The server may have died between the fork and the prctl call.
    if os.getppid() != server_pid:
        os._exit(1)


def _reap(out: TextIO, children: dict[int, str]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        job_id = children.pop(pid, None)
        if job_id is None:
            continue
        if os.WIFSIGNALED(status):
            _send(out, {"id": job_id, "pid": pid, "code": None, "signal": signal.Signals(os.WTERMSIG(status)).name})
        else:
            _send(out, {"id": job_id, "pid": pid, "code": os.waitstatus_to_exitcode(status), "signal": None})
