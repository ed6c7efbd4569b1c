"""`apps serve` and `apps models ...`: parse flags, call the serving modules, print results."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
from pathlib import Path

import click

from apps.errors import AppError, ConfigError
from apps.layout import MODELS_CONFIG, list_models, write_models_config
from apps.options import argument, examples_for
from apps.serve import tf_serving
from apps.serve.batching import BatchingParameters

SIZE = re.compile(r"^\s*(\d+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$", re.IGNORECASE)
UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
}

EXAMPLES = """
\b
Examples:
  apps serve
  apps serve --model-base-path /srv/models --rest-port 9001 --grpc-port 9000 --host 0.0.0.0
  curl -d '{"instances": ["loved it"]}' localhost:8501/v1/models/sentiment:predict
  apps serve --print-tf-serving-command
"""


def parse_size(text: str) -> int:
    """'4MiB', '512k' or '1000000' -> bytes."""
    match = SIZE.match(str(text))
    if not match:
        raise ConfigError(f"--body-limit must look like 4MiB, 512KiB or 1000000, got {text!r}.")
    size = int(match.group(1)) * UNITS[(match.group(2) or "").lower()]
    if size < 1024:
        raise ConfigError(f"--body-limit must be at least 1KiB, got {text!r}.")
    return size


def _batching(max_batch_size, batch_timeout_micros, num_batch_threads, max_enqueued_batches):
    given = {
        key: value
        for key, value in dict(
            max_batch_size=max_batch_size,
            batch_timeout_micros=batch_timeout_micros,
            num_batch_threads=num_batch_threads,
            max_enqueued_batches=max_enqueued_batches,
        ).items()
        if value is not None
    }
    try:
        return BatchingParameters(**given)
    except ValueError as error:
        raise ConfigError(f"--{str(error).replace('_', '-')}.") from None


@click.command(epilog=EXAMPLES)
@click.option(
    "--model-base-path",
    type=click.Path(path_type=Path),
    default=Path("saved_models"),
    show_default=True,
    help="Directory of models: BASE/<name>/<version>/ (what export writes).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 opens the server to the network.",
)
@click.option(
    "--rest-port",
    type=click.IntRange(0, 65535),
    default=8501,
    show_default=True,
    help="REST port (0 picks a free one).",
)
@click.option(
    "--grpc-port",
    type=click.IntRange(0, 65535),
    default=8500,
    show_default=True,
    help="gRPC port (0 picks a free one).",
)
@click.option("--max-batch-size", type=int, help="Most rows in one model call.  [default: 64]")
@click.option(
    "--batch-timeout-micros",
    type=int,
    help="Longest wait for a batch to fill, in microseconds.  [default: 1000]",
)
@click.option(
    "--num-batch-threads",
    type=int,
    help="Model calls run at once.  [default: CPU cores, at most 4]",
)
@click.option(
    "--max-enqueued-batches",
    type=int,
    help="Full batches allowed to wait before requests get 429.  [default: 100]",
)
@click.option(
    "--body-limit",
    default="4MiB",
    show_default=True,
    help="Largest request body (and gRPC message); larger ones get 413.",
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(min=0.001),
    default=30.0,
    show_default=True,
    help="Seconds a prediction may take before a 504.",
)
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="How often to look for new versions (0: never).",
)
@click.option(
    "--print-tf-serving-command",
    is_flag=True,
    help="Write models.config and batching.config into the base path, print the "
    "docker lines that serve it with TensorFlow Serving (CPU and GPU), and exit.",
)
@click.option(
    "--write-batching-config",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Write these batching parameters as a TF Serving batching file and exit.",
)
def serve(
    model_base_path,
    host,
    rest_port,
    grpc_port,
    max_batch_size,
    batch_timeout_micros,
    num_batch_threads,
    max_enqueued_batches,
    body_limit,
    request_timeout,
    poll_seconds,
    print_tf_serving_command,
    write_batching_config,
):
    """Serve exported models over TF Serving's REST and gRPC APIs.

    Loading a SavedModel runs its code: serve only models you trust.
    """
    batching = _batching(
        max_batch_size, batch_timeout_micros, num_batch_threads, max_enqueued_batches
    )
    limit = parse_size(body_limit)
    if write_batching_config is not None:
        path = _write(
            lambda: tf_serving.write_batching_config(write_batching_config, batching),
            write_batching_config,
        )
        click.echo(f"Wrote {path}:\n{batching.to_text()}", nl=False)
        if not print_tf_serving_command:
            return
    if print_tf_serving_command:
        _print_tf_serving(model_base_path, batching, rest_port, grpc_port)
        return
    _require_models(model_base_path)
    for kind, port in (("rest", rest_port), ("grpc", grpc_port)):
        _check_port(host, port, kind)  # before minutes of model loading, not after
    from apps.serve.server import PortInUse, Server, ServerOptions

    options = ServerOptions(
        model_base_path, host, rest_port, grpc_port, batching, limit, request_timeout, poll_seconds
    )
    server = Server(options)
    if not logging.getLogger().isEnabledFor(logging.DEBUG):  # no traceback per junk request
        logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)

    def started(server: Server) -> None:
        served = server.registry.available()
        shown = "; ".join(
            f"{name} {', '.join(map(str, v)) or 'none'}" for name, v in served.items()
        )
        click.echo(f"Models (versions served): {shown or 'none yet'}")
        click.echo(
            f"REST on http://{host}:{server.rest_port}/v1/models/<name>, gRPC on "
            f"{host}:{server.grpc_port}. Ctrl-C or SIGTERM stops."
        )
        click.echo(f"Playground: http://{host}:{server.rest_port}/ (try every model in a browser)")

    try:
        asyncio.run(server.run(started=started))
    except PortInUse as error:
        raise AppError(
            f"Cannot listen on {error.kind} port {error.port} of {error.host} "
            f"({error.reason}): pass --{error.kind.lower()}-port with a free "
            "port."
        ) from None
    click.echo("Stopped.")


def _check_port(host: str, port: int, kind: str) -> None:
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise AppError(
            f"--host {host!r} is not an address this machine has: {error.strerror}."
        ) from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise AppError(
                f"Cannot listen on {host} port {port} ({error.strerror}): pass "
                f"--{kind}-port with a free port."
            ) from None


def _write(action, path: Path):
    try:
        return action()
    except OSError as error:
        raise AppError(f"Cannot write '{path}': {error.strerror or error}.") from None


def _require_models(base: Path) -> None:
    if not base.is_dir():
        raise AppError(
            f"Model base path '{base}' does not exist: export a model first "
            "(apps sentiment export RUN) or pass --model-base-path."
        )
    if not list_models(base):
        logging.getLogger(__name__).warning(
            "No models under '%s' yet: serving nothing until a version appears.", base
        )


def _print_tf_serving(
    base: Path, batching: BatchingParameters, rest_port: int, grpc_port: int
) -> None:
    _require_models(base)
    config = base / MODELS_CONFIG
    if not config.is_file():
        _write(lambda: write_models_config(base), config)
        click.echo(f"Wrote {config}")
    batching_file = _write(
        lambda: tf_serving.write_batching_config(base / tf_serving.BATCHING_CONFIG, batching),
        base / tf_serving.BATCHING_CONFIG,
    )
    click.echo(f"Wrote {batching_file}:\n{batching.to_text()}")
    commands = tf_serving.docker_commands(base, rest_port, grpc_port)
    click.echo("# CPU image:")
    click.echo(commands["cpu"])
    click.echo("# GPU image (needs the NVIDIA container toolkit):")
    click.echo(commands["gpu"])


# ------------------------------------------------------------------------ apps models


MODELS_EXAMPLES = """
\b
Examples:
  apps models list
  apps models list /srv/models --json
  apps models config
  apps models config /srv/models --container-base /models
"""
BASE_HELP = "Directory of exported models, BASE/<name>/<version>/ (default: saved_models)."


@click.group(epilog=examples_for(MODELS_EXAMPLES, "list", "config"))
def models():
    """List exported models and write TensorFlow Serving's models.config."""


@models.command("list", epilog=examples_for(MODELS_EXAMPLES, "list"))
@argument("base", type=click.Path(path_type=Path), default=Path("saved_models"),
          help=BASE_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
def list_command(base: Path, as_json: bool):
    """Name, versions, signatures, inputs/outputs and metrics of every model under BASE."""
    from apps.metadata import read as read_metadata
    from apps.serve.signatures import describe_signatures

    if not base.is_dir():
        raise AppError(f"'{base}' does not exist: export a model first or name the base path.")
    report = {}
    for name, versions in list_models(base).items():
        newest = base / name / str(versions[-1])
        try:
            signatures = describe_signatures(newest)
        except ValueError as error:
            signatures = {"error": str(error)}
        metadata = read_metadata(newest) or {}
        report[name] = {
            "versions": versions,
            "newest": versions[-1],
            "signatures": signatures,
            "task": metadata.get("task"),
            "metrics": metadata.get("metrics", {}),
            "exported_at": metadata.get("exported_at"),
        }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    if not report:
        click.echo(f"No models under {base} (a model is BASE/<name>/<number>/saved_model.pb).")
        return
    for name, entry in report.items():
        click.echo(
            f"{name}  versions {', '.join(map(str, entry['versions']))} "
            f"(newest {entry['newest']}{', task ' + entry['task'] if entry['task'] else ''})"
        )
        if entry["metrics"]:
            shown = ", ".join(f"{k} {_number(v)}" for k, v in entry["metrics"].items())
            click.echo(f"  metrics: {shown}")
        if "error" in entry["signatures"]:
            click.echo(f"  unreadable: {entry['signatures']['error']}")
            continue
        for signature, sides in entry["signatures"].items():
            inputs = ", ".join(f"{k} {v}" for k, v in sides["inputs"].items())
            outputs = ", ".join(f"{k} {v}" for k, v in sides["outputs"].items())
            click.echo(f"  {signature}: {inputs} -> {outputs}")


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@models.command("config", epilog=examples_for(MODELS_EXAMPLES, "config"))
@argument("base", type=click.Path(path_type=Path), default=Path("saved_models"),
          help=BASE_HELP)
@click.option(
    "--container-base",
    default="/models",
    show_default=True,
    help="Path BASE is mounted at inside the TF Serving container.",
)
@click.option("--local", is_flag=True, help="Write this machine's absolute paths instead.")
def config_command(base: Path, container_base: str, local: bool):
    """(Re)write BASE/models.config listing every model for TensorFlow Serving."""
    if not base.is_dir():
        raise AppError(f"'{base}' does not exist: export a model first or name the base path.")
    found = list_models(base)
    path = _write(
        lambda: write_models_config(base, None if local else container_base), base / MODELS_CONFIG
    )
    click.echo(
        f"Wrote {path} ({len(found)} model{'s' if len(found) != 1 else ''}: "
        f"{', '.join(found) or 'none'})"
    )
    click.echo(path.read_text(encoding="utf-8"), nl=False)
