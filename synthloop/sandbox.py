"""Run untrusted Python (model-written code) in a sandbox, and say how strong it is.

Three isolation levels, weakest to strongest (:data:`LEVELS`):

``process``
    A fresh ``python -I -S`` with an empty environment, a private temporary working folder,
    resource limits (CPU seconds, address space, file size, open files, process count, no
    core dumps), an audit hook refusing sockets and process creation, its own session so the
    whole process group is killed at the timeout, and — when synthloop runs as root — the
    unprivileged uid 65534 (``nobody``). The code still sees the machine's files and processes
    that ``nobody`` may see.
``namespaces``
    ``process`` inside new user, PID, mount, network, IPC and UTS namespaces (util-linux
    ``unshare``, unprivileged user namespaces): it sees no other process (its ``/proc`` is its
    own), cannot signal one, and has no network (not even the host's loopback).
``bubblewrap``
    ``namespaces`` plus a filesystem of its own (``bwrap``, Debian/PyPI-independent package
    ``bubblewrap``): only ``/usr``, the interpreter's prefix read-only, a tmpfs ``/tmp`` and the
    private folder writable; the host's home folders, the dataset and the run folder are not
    there. ``ctypes`` and ``_posixsubprocess`` are masked, so the audit hook cannot be bypassed
    through them; all capabilities dropped; it dies with its parent.

:func:`run_python` refuses to run below ``minimum`` (``bubblewrap`` by default) with a
:class:`SandboxUnavailable` error that says what to install or how to opt in to a weaker level.
Output is read from size-capped files, never unbounded pipes, and :meth:`SandboxResult.reason`
is truncated and scrubbed of every value of the parent's environment.

Linux only; elsewhere only ``process`` exists (without the uid drop).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from synthloop.configs import Config
from synthloop.errors import ConfigError

LEVELS = ("process", "namespaces", "bubblewrap")
NOBODY = 65534
#: Extension modules hidden from the code under bubblewrap (they bypass audit hooks).
MASKED_MODULES = ("_ctypes", "_posixsubprocess")

# Installed before the user's code: no sockets, no new processes, no os.system.
_PRELUDE = f"MASKED = {MASKED_MODULES!r}\n" + """\
import sys
def _deny(event, args, _masked=MASKED):
    if event == "import" and args[0] in _masked:
        raise PermissionError(f"sandbox: import {args[0]} is not allowed")
    if event.startswith(("socket.", "subprocess.", "os.system", "os.exec", "os.spawn",
                         "os.posix_spawn", "os.fork", "os.forkpty", "pty.spawn", "os.kill",
                         "os.killpg", "signal.pthread_kill", "ctypes.")):
        raise PermissionError(f"sandbox: {event} is not allowed")
sys.addaudithook(_deny)
del _deny, MASKED
"""


class SandboxUnavailable(ConfigError):
    """The requested isolation level cannot be had on this machine."""


class Limits(Config):
    """Resource limits of one sandboxed run.

    timeout_s: wall-clock seconds (> 0) after which the whole sandbox is killed; CPU seconds
    are capped at ``ceil(timeout_s) + 1``. memory_mb: address space (MiB, ≥ 64).
    processes: processes/threads the sandbox's uid may add (≥ 1; enforced when synthloop is
    root — the run uses uid 65534 — or for an unprivileged user relative to its own count).
    file_size_mb: the largest file it may write (MiB). open_files: descriptors.
    output_kb: how much of stdout / stderr is kept (the rest is cut off by ``file_size_mb``).
    """

    timeout_s: float = Field(5.0, gt=0)
    memory_mb: int = Field(512, ge=64)
    processes: int = Field(16, ge=1)
    file_size_mb: int = Field(16, ge=1)
    open_files: int = Field(64, ge=1)
    output_kb: int = Field(64, ge=1)


@dataclass(frozen=True)
class SandboxResult:
    """What a sandboxed run did. ``returncode`` is None when it was killed at the timeout."""

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    isolation: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def reason(self, limit: int = 300) -> str | None:
        """None when it succeeded, else why not: the last stderr line (or the exit status),
        at most ``limit`` characters, with every parent environment value removed."""
        if self.ok:
            return None
        if self.timed_out:
            return "timed out"
        lines = [ln.strip() for ln in self.stderr.splitlines() if ln.strip()]
        if self.returncode is not None and self.returncode < 0:
            why = f"killed by signal {-self.returncode}"
            why = f"{lines[-1]} ({why})" if lines else why
        else:
            why = lines[-1] if lines else f"exit code {self.returncode}"
        return scrub("".join(c if c.isprintable() else " " for c in why))[:limit]


def scrub(text: str) -> str:
    """``text`` with every value of this process's environment (≥ 6 characters) masked."""
    for value in sorted({v for v in os.environ.values() if len(v) >= 6}, key=len, reverse=True):
        if value in text:
            text = text.replace(value, "[environment value removed]")
    return text


def _world_reachable(path: Path) -> bool:
    """True when any user (``nobody``) may traverse to and run ``path``."""
    try:
        st = path.stat()
        if not st.st_mode & stat.S_IXOTH or not st.st_mode & stat.S_IROTH:
            return False
        return all(p.stat().st_mode & stat.S_IXOTH for p in path.resolve().parents)
    except OSError:
        return False


def _drop_uid() -> bool:
    return os.name == "posix" and os.geteuid() == 0


def _interpreter() -> Path:
    """A Python the sandbox's uid can run: ours when reachable, else the system's."""
    ours = Path(sys.executable).resolve()
    if not _drop_uid() or _world_reachable(ours):
        return ours
    for cand in (Path("/usr/bin/python3"), Path("/usr/local/bin/python3")):
        if cand.exists() and _world_reachable(cand.resolve()):
            return cand.resolve()
    raise SandboxUnavailable(
        f"sandbox: no Python interpreter is readable by uid {NOBODY} ({ours} is not); "
        "install python3 system-wide (apt-get install python3)")


def _bwrap_argv(interp: Path, work: Path, masks: tuple[str, ...]) -> list[str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable("sandbox: bubblewrap is not installed "
                                 "(apt-get install bubblewrap)")
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
            "--cap-drop", "ALL", "--ro-bind", "/usr", "/usr"]
    for link in ("bin", "lib", "lib64", "sbin"):
        p = Path("/") / link
        if p.is_symlink():
            argv += ["--symlink", os.readlink(p), str(p)]
        elif p.is_dir():
            argv += ["--ro-bind", str(p), str(p)]
    if not interp.is_relative_to("/usr"):
        prefix = interp.parents[1]  # PREFIX/bin/python3.x
        argv += ["--ro-bind", str(prefix), str(prefix)]
    for m in masks:
        argv += ["--ro-bind", "/dev/null", m]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
             "--bind", str(work), "/sandbox", "--chdir", "/sandbox", "--setenv", "LANG",
             "C.UTF-8", "--setenv", "PATH", "/usr/bin:/bin", "--"]
    return argv


def _unshare_argv() -> list[str]:
    unshare = shutil.which("unshare")
    if unshare is None:
        raise SandboxUnavailable("sandbox: util-linux unshare is not installed")
    return [unshare, "--user", "--map-root-user", "--pid", "--fork", "--mount", "--mount-proc",
            "--net", "--ipc", "--uts", "--kill-child", "--"]


@functools.lru_cache(maxsize=1)
def _masked_paths(interp: str) -> tuple[str, ...]:
    code = (f"import importlib.util as u\nfor m in {MASKED_MODULES!r}:\n"
            "    s = u.find_spec(m)\n"
            "    print(s.origin if s and s.origin and s.origin.endswith('.so') else '')")
    try:
        r = subprocess.run([interp, "-I", "-S", "-c", code], capture_output=True, text=True,
                           timeout=30, env={"PATH": "/usr/bin:/bin"}, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return tuple(p for p in r.stdout.split() if p)


def _limits_fn(limits: Limits, drop: bool):
    cpu = int(limits.timeout_s) + 2
    nproc = limits.processes + (0 if drop else _own_process_count())

    def apply() -> None:
        import resource

        os.setsid()
        if drop:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb << 20,) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_mb << 20,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files,) * 2)
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc,) * 2)

    return apply


def _own_process_count() -> int:
    """Processes and threads this uid runs now (RLIMIT_NPROC counts them all)."""
    uid, n = os.getuid(), 0
    for d in Path("/proc").glob("[0-9]*"):
        try:
            if d.stat().st_uid == uid:
                n += len(os.listdir(d / "task"))
        except OSError:
            continue
    return n


def _launch(level: str, code: str, limits: Limits) -> SandboxResult:
    drop = _drop_uid()
    interp = _interpreter() if os.name == "posix" else Path(sys.executable)
    with tempfile.TemporaryDirectory(prefix="synthloop-sandbox-") as tmp:
        root = Path(tmp)
        work = root / "work"
        work.mkdir()
        (work / "main.py").write_text(_PRELUDE + "\n" + code, encoding="utf-8")
        if drop:
            for p in (root, work, work / "main.py"):
                os.chown(p, NOBODY, NOBODY)
        cmd = [str(interp), "-I", "-S", "main.py"]
        if level == "bubblewrap":
            cmd = _bwrap_argv(interp, work, _masked_paths(str(interp))) + cmd
        elif level == "namespaces":
            cmd = _unshare_argv() + cmd
        out_path, err_path = root / "stdout", root / "stderr"
        t0 = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(cmd, cwd=work, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=err, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                                    preexec_fn=_limits_fn(limits, drop)
                                    if os.name == "posix" else None)
            timed_out = False
            try:
                proc.wait(timeout=limits.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc)
        seconds = time.monotonic() - t0
        cap = limits.output_kb << 10
        return SandboxResult(None if timed_out else proc.returncode,
                             _tail(out_path, cap), _tail(err_path, cap), timed_out, level,
                             seconds)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the sandbox's whole process group (its session leader's group) and reap it."""
    if os.name == "posix":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _tail(path: Path, cap: int) -> str:
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - cap))
        return f.read().decode("utf-8", "replace")


@functools.lru_cache(maxsize=1)
def available_isolation() -> str:
    """The strongest level that works on this machine (probed once by running Python)."""
    if sys.platform != "linux":
        return "process"
    for level in ("bubblewrap", "namespaces"):
        try:
            r = _launch(level, "import os\nassert os.getpid() < 10", Limits(timeout_s=30))
        except (SandboxUnavailable, OSError):
            continue
        if r.ok:
            return level
    return "process"


def check_isolation(minimum: str = "bubblewrap") -> str:
    """The level a run would use, or :class:`SandboxUnavailable` when it is below ``minimum``."""
    if minimum not in LEVELS:
        raise ConfigError(f"sandbox: isolation must be one of {', '.join(LEVELS)} "
                          f"(got {minimum!r})")
    have = available_isolation()
    if LEVELS.index(have) < LEVELS.index(minimum):
        hint = ("apt-get install bubblewrap" if minimum == "bubblewrap" else
                "enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)")
        raise SandboxUnavailable(
            f"sandbox: {minimum!r} isolation is not available here (best: {have!r}); "
            f"{hint}, or accept weaker isolation with isolation: {have}")
    return have


def run_python(code: str, limits: Limits | None = None, *,
               minimum: str = "bubblewrap") -> SandboxResult:
    """Run ``code`` as a Python script in the strongest sandbox available here.

    Refuses (:class:`SandboxUnavailable`) when that is weaker than ``minimum`` — one of
    :data:`LEVELS`; ``"process"`` accepts any machine. Never raises for what the code does:
    errors, crashes, limits and timeouts are in the :class:`SandboxResult`.
    """
    level = check_isolation(minimum)
    return _launch(level, code, limits or Limits())
