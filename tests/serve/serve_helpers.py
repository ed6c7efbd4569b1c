"""Helpers shared by the serving tests: a server on a background event loop, HTTP calls."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from apps.serve.server import Server, ServerOptions

ROOT = Path(__file__).resolve().parents[2]


class ServerThread:
    """A `Server` on its own event loop in a daemon thread, on free ports of 127.0.0.1."""

    def __init__(self, options: ServerOptions, registry=None, start_timeout: float = 60) -> None:
        self.server = Server(options, registry)
        self.start_timeout = start_timeout  # loading and warming every model up
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self.call(self.server.start(), timeout=self.start_timeout)
        return self

    def __exit__(self, *exc) -> None:
        self.call(self.server.stop(), timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)

    def call(self, coroutine, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.server.grpc_port}"


def options(base: Path, **changes) -> ServerOptions:
    settings = dict(model_base_path=Path(base), rest_port=0, grpc_port=0, poll_seconds=0)
    return ServerOptions(**{**settings, **changes})


def http(
    url: str, body=None, method: str | None = None, headers: dict | None = None, timeout: float = 30
) -> tuple[int, dict | str]:
    """(status, parsed JSON or text) for one request; HTTP errors are answers, not raises."""
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def apps_process(*args, **kwargs) -> subprocess.Popen:
    """`python -m apps ARGS` in the repository, output captured."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-m", "apps", *map(str, args)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    """Until `url` answers (any status), failing early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited {process.returncode}: {process.stdout.read()}")
        try:
            http(url, timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout}s")
