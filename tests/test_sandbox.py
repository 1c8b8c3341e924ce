"""The sandbox for model-written code: each known escape is tried and must fail."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

from synthloop import sandbox as sb
from synthloop.curate.verify import VerifyPython
from synthloop.pipeline.step import StepContext
from synthloop.records.schema import text_records

SECRET = "sk-test-7f3a9c2e5b1d4a6f"  # what an API key or the watermark key would look like


def _need(level: str) -> None:
    have = sb.available_isolation()
    if sb.LEVELS.index(have) >= sb.LEVELS.index(level):
        return
    if os.environ.get("CI") and level == "bubblewrap":
        pytest.fail("CI installs bubblewrap (.ci/run); it is missing or does not work")
    enable = ("apt-get install bubblewrap" if level == "bubblewrap"
              else "enable unprivileged user namespaces")
    pytest.skip(f"not tested: {level} sandbox isolation (enable: {enable})")


STRONG = [pytest.param(level, id=level) for level in ("namespaces", "bubblewrap")]


def run(code: str, level: str, **limits) -> sb.SandboxResult:
    _need(level)
    return sb._launch(level, code, sb.Limits(**{"timeout_s": 10, **limits}))


@pytest.mark.parametrize("level", STRONG)
def test_environment_of_other_processes_is_not_readable(level, monkeypatch):
    monkeypatch.setenv("SYNTHLOOP_WATERMARK_KEY", SECRET)
    code = ("import os\nseen = []\nfor d in os.listdir('/proc'):\n"
            "    try:\n        seen.append(open(f'/proc/{d}/environ').read())\n"
            "    except Exception:\n        pass\nprint(seen)\n"
            "raise SystemExit(repr(seen) + open(f'/proc/{os.getppid()}/environ').read())")
    # the parent that starts the sandbox has the secret in its environment
    r = run(code, level)
    assert SECRET not in r.stdout + r.stderr
    assert not r.ok and SECRET not in (r.reason() or "")


def test_reason_is_scrubbed_of_environment_values_and_truncated(monkeypatch):
    monkeypatch.setenv("MY_API_KEY", SECRET)
    r = sb.SandboxResult(1, "", f"Traceback\nValueError: key {SECRET} " + "x" * 1000, False,
                         "process", 0.1)
    why = r.reason()
    assert SECRET not in why and "[environment value removed]" in why and len(why) <= 300
    assert sb.SandboxResult(None, "", "", True, "process", 5.0).reason() == "timed out"
    assert sb.SandboxResult(0, "", "warning", False, "process", 0.1).reason() is None


@pytest.mark.parametrize("level", STRONG)
def test_ctypes_cannot_run_a_shell_command(level, tmp_path):
    marker = tmp_path / "pwned"
    os.chmod(tmp_path, 0o777)
    r = run(f"import ctypes\nctypes.CDLL(None).system(b'touch {marker}')", level)
    assert not r.ok and not marker.exists()
    # loading the extension module by file, past the import hook
    r = run("import importlib.machinery as m, importlib.util as u, sys\n"
            "import glob\np = [x for d in sys.path for x in glob.glob(d + '/_ctypes*.so')]\n"
            "l = m.ExtensionFileLoader('_ctypes', p[0])\n"
            "mod = l.create_module(u.spec_from_loader('_ctypes', l))\n"
            f"print(mod.dlopen)\nimport os\nos.system('touch {marker}')", level)
    assert not r.ok and not marker.exists()


@pytest.mark.parametrize("level", STRONG)
def test_no_new_processes(level, tmp_path):
    marker = tmp_path / "forked"
    os.chmod(tmp_path, 0o777)
    for code in ("import os\nos.fork()",
                 "import _posixsubprocess",
                 f"import subprocess\nsubprocess.run(['touch', '{marker}'])",
                 f"import os\nos.system('touch {marker}')",
                 f"import os\nos.posix_spawn('/usr/bin/touch', ['touch', '{marker}'], {{}})"):
        r = run(code, level)
        assert not r.ok, code
        assert "sandbox:" in r.stderr, r.stderr
    assert not marker.exists()


def test_process_count_is_limited():
    _need("process")
    r = run("import threading, time\nts = [threading.Thread(target=time.sleep, args=(0.5,), "
            "daemon=True) for _ in range(64)]\nfor t in ts:\n    t.start()", "process",
            processes=8)
    assert not r.ok and "can't start new thread" in r.stderr


@pytest.mark.parametrize("level", STRONG)
def test_no_network_even_to_loopback(level):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(0.5)
    port = srv.getsockname()[1]
    try:
        for code in (f"import socket\nsocket.create_connection(('127.0.0.1', {port}), 2)",
                     f"import _socket\ns = _socket.socket()\ns.connect(('127.0.0.1', {port}))"):
            r = run(code, level)
            assert not r.ok
            with pytest.raises(TimeoutError):
                srv.accept()
    finally:
        srv.close()


def test_user_files_are_neither_visible_nor_writable(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    os.chmod(secret, 0o666)
    for p in (tmp_path, *tmp_path.parents):
        if p != p.parent:
            os.chmod(p, os.stat(p).st_mode | 0o005)
    for code in (f"print(open('{secret}').read())",
                 f"open('{secret}', 'w').write('overwritten')",
                 f"import os\nos.remove('{secret}')"):
        r = run(code, "bubblewrap")
        assert not r.ok and "No such file" in r.stderr
        assert SECRET not in r.stdout + r.stderr
    assert secret.read_text() == SECRET
    # its own folder and /tmp are writable
    assert run("open('out.txt', 'w').write('ok')\nopen('/tmp/x', 'w').write('ok')",
               "bubblewrap").ok


@pytest.mark.parametrize("level", STRONG)
def test_other_processes_cannot_be_signalled(level):
    victim = subprocess.Popen(["sleep", "30"])
    try:
        for code in (f"import os\nos.kill({victim.pid}, 9)",
                     "import os\nos.kill(os.getppid(), 9)",
                     f"import signal\nsignal.pidfd_send_signal(__import__('os').pidfd_open("
                     f"{victim.pid}), 9)"):
            r = run(code, level)
            assert not r.ok
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


@pytest.mark.parametrize("level", ["process", *STRONG])
def test_timeout_memory_and_output_limits(level):
    t = time.monotonic()
    r = run("while True: pass", level, timeout_s=1)
    assert r.timed_out and r.returncode is None and time.monotonic() - t < 5
    r = run("x = bytearray(2 << 30)", level, memory_mb=256)
    assert not r.ok and "MemoryError" in r.stderr
    r = run("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", level,
            file_size_mb=1, output_kb=4)
    assert not r.ok and len(r.stdout) <= 4096


def test_good_code_runs_and_bad_code_says_why():
    assert sb.run_python("assert sum([1, 2]) == 3", minimum="process").ok
    r = sb.run_python("assert 1 == 2", minimum="process")
    assert "AssertionError" in r.reason()


def test_weaker_isolation_is_refused_unless_accepted(monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(sb.shutil, "which",
                        lambda name, *a, **k: None if name == "bwrap" else real_which(name))
    sb.available_isolation.cache_clear()
    try:
        assert sb.available_isolation() in ("namespaces", "process")
        with pytest.raises(sb.SandboxUnavailable, match="apt-get install bubblewrap"):
            sb.run_python("pass")
        t = text_records(["def f():\n    return 1\n"])
        with pytest.raises(sb.SandboxUnavailable, match="isolation"):
            VerifyPython().apply(t, StepContext(seed=0))
        out = VerifyPython(isolation="process").apply(t, StepContext(seed=0))
        assert out.kept.num_rows == 1
    finally:
        sb.available_isolation.cache_clear()


def test_bad_limits_are_config_errors():
    with pytest.raises(sb.ConfigError, match="timeout_s"):
        sb.Limits(timeout_s=0)
    with pytest.raises(sb.ConfigError, match="isolation must be one of"):
        sb.check_isolation("docker")
