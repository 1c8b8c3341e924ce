"""Count what bad input, sandbox escapes and concurrent clients do to a synthloop checkout.

Three measurements, printed as one line each (issue #17's before/after counts):

1. the malformed-input matrix of ``tests/test_robustness.py`` (CASES × COMMANDS, in-process):
   tracebacks, one-line errors, silently accepted, runs that left files behind;
2. sandbox escapes: 11 attacks model-written code could try (read the parent's environment,
   ``ctypes`` shell commands, ``_posixsubprocess``, fork, TCP to 127.0.0.1, read / delete /
   overwrite a user file, kill another process or the parent, children outliving the timeout);
3. ``synthloop serve`` (its server class, on a fresh from-scratch model): 128 requests from 64
   concurrent clients, a new connection each — how many were reset.

Usage (on this checkout, or an older one with ``PYTHONPATH=OLD_CHECKOUT``; the matrix always
uses this checkout's test cases):

    SYNTHLOOP_WATERMARK_KEY=some-secret-value python scripts/robustness_report.py
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

TESTS = pathlib.Path(__file__).resolve().parents[1] / "tests"


def matrix() -> dict:
    sys.path.insert(0, str(TESTS))
    import test_robustness as mod
    from typer.testing import CliRunner

    from synthloop.cli import app

    runner, d = CliRunner(), pathlib.Path(tempfile.mkdtemp())
    for name, (data, _) in mod.CASES.items():
        (d / name).write_bytes(data)
    (d / "real.jsonl").write_text(mod._jl([{"text": t} for t in mod.GOOD]))
    count: collections.Counter = collections.Counter()
    here = os.getcwd()
    for cmd in mod.COMMANDS.values():
        for case in mod.CASES:
            w = pathlib.Path(tempfile.mkdtemp())
            os.chdir(w)
            r = runner.invoke(app, cmd(d / case, d / "real.jsonl"))
            os.chdir(here)
            if r.exception is not None and not isinstance(r.exception, SystemExit):
                count["tracebacks"] += 1
            elif r.exit_code == 2 and sum(ln.startswith("error:")
                                          for ln in r.output.splitlines()) == 1:
                count["one error line"] += 1
            elif r.exit_code == 0:
                count["accepted silently"] += 1
            else:
                count[f"exit {r.exit_code}"] += 1
            count["left files behind"] += any(w.iterdir())
    return dict(count)


def _runner():
    import synthloop

    # by file, not by import: an editable install can lend a newer checkout's modules
    if pathlib.Path(synthloop.__file__).with_name("sandbox.py").exists():
        from synthloop.sandbox import Limits, run_python

        def run(code: str) -> str:
            r = run_python(code, Limits(timeout_s=3))
            return (r.reason() or "") + r.stdout
        return run, "from synthloop.sandbox import run_python as f, Limits\n" \
            "f('import ctypes, os\\nctypes.CDLL(None).kill(os.getppid(), 9)', Limits(timeout_s=3))"
    else:  # before the sandbox module: the verifier's own subprocess
        from synthloop.curate.verify import run_python

        def run(code: str) -> str:
            return run_python(code, timeout_s=3) or ""
        return run, "from synthloop.curate.verify import run_python as f\n" \
            "f('import ctypes, os\\nctypes.CDLL(None).kill(os.getppid(), 9)', timeout_s=3)"


def escapes() -> dict:
    run, kill_parent = _runner()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="escape-probe-"))
    os.chmod(tmp, 0o777)
    secret, marker = tmp / "secret.txt", tmp / "marker"
    secret.write_text("TOPSECRET")
    os.chmod(secret, 0o666)
    victim = subprocess.Popen(["sleep", "60"])
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    srv.settimeout(0.3)
    port = srv.getsockname()[1]
    key = os.environ.get("SYNTHLOOP_WATERMARK_KEY", "<unset>")

    def made(code: str) -> bool:
        marker.unlink(missing_ok=True)
        run(code)
        time.sleep(0.3)
        return marker.exists()

    def connected() -> bool:
        try:
            srv.accept()
            return True
        except OSError:
            return False

    e = {}
    e["read parent environment"] = key in run(
        "import os\nenv = open(f'/proc/{os.getppid()}/environ').read().split(chr(0))\n"
        "raise SystemExit([x for x in env if 'WATERMARK' in x])")
    e["ctypes shell command"] = made(f"import ctypes\nctypes.CDLL(None).system(b'touch {marker}')")
    e["_posixsubprocess fork_exec"] = made(
        f"import _posixsubprocess, os\nr, w = os.pipe()\n_posixsubprocess.fork_exec("
        f"['/usr/bin/touch', '{marker}'], [b'/usr/bin/touch'], True, (), None, None, -1, -1, "
        f"-1, -1, -1, -1, r, w, False, False, -1, None, None, None, -1, None, False)")
    e["fork via ctypes"] = made(
        f"import ctypes\nlibc = ctypes.CDLL(None)\nif libc.fork() == 0:\n"
        f"    libc.system(b'touch {marker}')\n    libc._exit(0)")
    run(f"import ctypes, socket, struct\nlibc = ctypes.CDLL(None)\ns = libc.socket(2, 1, 0)\n"
        f"a = struct.pack('H', 2) + struct.pack('!H4s8x', {port}, socket.inet_aton('127.0.0.1'))"
        f"\nlibc.connect(s, a, 16)")
    e["TCP to 127.0.0.1"] = connected()
    e["read a user file"] = "TOPSECRET" in run(f"raise SystemExit(open('{secret}').read())")
    run(f"open('{secret}', 'w').write('pwned')")
    e["overwrite a user file"] = secret.read_text() != "TOPSECRET"
    run(f"import os\nos.remove('{secret}')")
    e["delete a user file"] = not secret.exists()
    run(f"import ctypes\nctypes.CDLL(None).kill({victim.pid}, 9)")
    time.sleep(0.2)
    e["kill another process"] = victim.poll() is not None
    victim.kill()
    child = subprocess.run([sys.executable, "-c", kill_parent + "\nprint('survived')"],
                           capture_output=True, text=True, timeout=60)
    e["kill the parent"] = "survived" not in child.stdout
    run("import ctypes, time\nlibc = ctypes.CDLL(None)\nfor _ in range(3):\n"
        "    if libc.fork() == 0:\n        libc.setsid()\n        time.sleep(20)\n"
        "        libc._exit(0)\ntime.sleep(30)")
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", "main.py"], capture_output=True, text=True).stdout
    e["children outlive the timeout"] = bool(left.split())
    subprocess.run(["pkill", "-9", "-f", "main.py"], capture_output=True)
    return {"escaped": sum(e.values()), "of": len(e),
            "which": [k for k, v in e.items() if v]}


def serve_load() -> dict:
    import requests

    from synthloop.generate.backends import LocalBackend
    from synthloop.generate.server import OpenAIServer
    from synthloop.models.lm import TinyLM
    from synthloop.models.registry import load_lm
    from synthloop.models.tokenizer import BPETokenizer

    path = pathlib.Path(tempfile.mkdtemp()) / "tiny"
    TinyLM.create(BPETokenizer.train(["a small corpus of words"] * 20, vocab_size=300),
                  size="tiny", max_len=512, seed=0).save(path)
    srv = OpenAIServer(LocalBackend(load_lm(str(path))), port=0).start()
    url = srv.url + "/chat/completions"
    bar = threading.Barrier(64)

    def client(i: int) -> list[str]:
        bar.wait()
        out = []
        for k in range(2):
            body = {"model": "t", "messages": [{"role": "user", "content": f"req {i} {k}"}],
                    "max_tokens": 8, "seed": i}
            try:
                out.append(str(requests.post(url, json=body, timeout=120).status_code))
            except requests.ConnectionError:
                out.append("reset")
        return out

    with ThreadPoolExecutor(64) as pool:
        res = collections.Counter(x for xs in pool.map(client, range(64)) for x in xs)
    srv.shutdown()
    return dict(res)


if __name__ == "__main__":
    print("malformed-input matrix:", json.dumps(matrix()))
    print("sandbox escapes:", json.dumps(escapes()))
    print("serve, 128 requests from 64 concurrent clients:", json.dumps(serve_load()))
