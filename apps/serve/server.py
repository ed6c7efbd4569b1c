"""REST and gRPC together on one event loop, sharing one registry and one batch pool.

Start-up loads every model before the ports open (as TF Serving does), so a client
that can connect can predict. SIGTERM or SIGINT stops accepting work, lets requests
already in flight finish (up to `shutdown_grace` seconds), then stops polling.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from apps.serve.batching import BatchingParameters, BatchPool
from apps.serve.grpc_service import make_server
from apps.serve.registry import ModelRegistry
from apps.serve.rest import make_app
from apps.serve.service import Service

log = logging.getLogger(__name__)

DEFAULT_BODY_LIMIT = 4 * 1024 * 1024  # bytes; TF Serving's gRPC default message limit


@dataclass
class ServerOptions:
    """Everything `apps serve` can be told (the CLI flags, one for one)."""

    model_base_path: Path = Path("saved_models")
    host: str = "127.0.0.1"
    rest_port: int = 8501
    grpc_port: int = 8500
    batching: BatchingParameters = field(default_factory=BatchingParameters)
    body_limit: int = DEFAULT_BODY_LIMIT
    request_timeout: float = 30.0
    poll_seconds: float = 1.0
    shutdown_grace: float = 30.0


class PortInUse(OSError):
    """A port could not be bound (already in use, or not allowed)."""

    def __init__(self, kind: str, host: str, port: int, reason: str) -> None:
        super().__init__(f"{kind} port {port} on {host}: {reason}")
        self.kind, self.host, self.port, self.reason = kind, host, port, reason


class Server:
    """One server process: `await start()`, then `await stop()` (or `run()` for both)."""

    def __init__(self, options: ServerOptions, registry: ModelRegistry | None = None) -> None:
        self.options = options
        self.registry = registry or ModelRegistry(options.model_base_path, options.poll_seconds)
        self.pool = BatchPool(options.batching)
        self.service = Service(self.registry, self.pool, options.request_timeout)
        self.rest_port: int | None = None
        self.grpc_port: int | None = None
        self._runner: web.AppRunner | None = None
        self._grpc = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Load the models, then open both ports (the actual ports when 0 was asked for)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.registry.poll)
        self.registry.start()
        options = self.options
        self._grpc = make_server(self.service, options.body_limit)
        try:
            self.grpc_port = self._grpc.add_insecure_port(
                f"{_grpc_host(options.host)}:{options.grpc_port}"
            )
        except RuntimeError as exc:
            raise PortInUse("gRPC", options.host, options.grpc_port, str(exc)) from None
        if self.grpc_port == 0:
            raise PortInUse("gRPC", options.host, options.grpc_port, "cannot bind (in use?)")
        self._runner = web.AppRunner(
            make_app(self.service, options.body_limit),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=options.shutdown_grace,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, options.host, options.rest_port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise PortInUse(
                "REST", options.host, options.rest_port, exc.strerror or str(exc)
            ) from None
        self.rest_port = self._runner.addresses[0][1]
        await self._grpc.start()
        log.debug(
            "REST on http://%s:%d, gRPC on %s:%d",
            options.host,
            self.rest_port,
            options.host,
            self.grpc_port,
        )

    async def stop(self) -> None:
        """Refuse new work, finish what is in flight, then release threads and ports."""
        grace = self.options.shutdown_grace
        tasks = []
        if self._runner is not None:
            tasks.append(self._runner.cleanup())
        if self._grpc is not None:
            tasks.append(self._grpc.stop(grace))
        await asyncio.gather(*tasks, return_exceptions=True)
        self.registry.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.pool.shutdown)

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(
        self, install_signal_handlers: bool = True, started: Callable[[Server], None] | None = None
    ) -> None:
        """Serve until SIGTERM / SIGINT (or `request_stop`), then shut down gracefully."""
        await self.start()
        if started is not None:
            started(self)
        loop = asyncio.get_running_loop()
        if install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        try:
            await self._stopping.wait()
            log.info(
                "Shutting down: finishing requests in flight (up to %gs)",
                self.options.shutdown_grace,
            )
        finally:
            await self.stop()


def _grpc_host(host: str) -> str:
    """gRPC wants IPv6 literals in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
