"""`apps serve` under load: throughput and latency against the in-process baseline, then abuse.

32 concurrent clients on keep-alive connections each send one MR test sentence per
request (3,000 requests), against `apps serve` running as a subprocess. The baseline
calls the same SavedModel signature in-process with batches of 32. Targets: zero
errors and served texts/s >= 0.5x the baseline. Then hostile inputs: a 256 MiB body
(streamed; it must be refused without being read), path tricks and 200 random junk
bodies must all get a 4xx, and the server must still answer afterwards.

    python bench/serve_bench.py [--model-base-path saved_models] \
        [--output-md docs/bench_sections/serve.md]

Without --model-base-path it trains a quick model (bench/configs/sentiment_mr.yaml,
one epoch) on MR's train.tsv and exports it to a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MR = ROOT.parent / "shared" / "data" / "sentiment" / "mr"
CONFIG = ROOT / "bench" / "configs" / "sentiment_mr.yaml"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def apps(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "apps", *args], env=ENV, check=True, capture_output=True, text=True
    )


def quick_model(workdir: Path) -> Path:
    """Train one epoch with the MR bench config and export it; return the base path."""
    run, base = workdir / "run", workdir / "saved_models"
    apps(
        "sentiment",
        "train",
        "--config",
        str(CONFIG),
        "--data",
        str(MR / "train.tsv"),
        "--valid",
        str(MR / "dev.tsv"),
        "--epochs",
        "1",
        "--output",
        str(run),
        "--quiet",
    )
    apps("sentiment", "export", str(run), "--model-base-path", str(base), "--name", "sentiment")
    return base


def read_texts(path: Path, count: int) -> list[str]:
    rows = [line.split("\t")[0] for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    return [rows[i % len(rows)] for i in range(count)]


def in_process_baseline(version_dir: Path, texts: list[str], batch: int = 32) -> float:
    """Texts/s calling the SavedModel's serving_default directly with batches of `batch`."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    batches = [tf.constant(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    for chunk in batches[:5]:
        signature(text=chunk)  # warm-up
    start = time.perf_counter()
    for chunk in batches:
        signature(text=chunk)["scores"].numpy()
    return len(texts) / (time.perf_counter() - start)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, timeout: float = 5) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def post(url: str, body: bytes, timeout: float = 30) -> int:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def start_server(base: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    port, grpc_port = free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "apps",
        "serve",
        "--model-base-path",
        str(base),
        "--rest-port",
        str(port),
        "--grpc-port",
        str(grpc_port),
        *extra,
    ]
    process = subprocess.Popen(
        command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"apps serve exited with {process.returncode}")
        try:
            if get(f"{url}/v1/models/sentiment", timeout=2) == 200:
                return process, url
        except OSError:
            pass
        time.sleep(0.3)
    process.kill()
    raise SystemExit("apps serve did not start within 300 s")


async def load_test(url: str, texts: list[str], clients: int) -> dict:
    """`clients` workers on keep-alive connections, one text per request, all texts once."""
    import aiohttp

    target = f"{url}/v1/models/sentiment:predict"
    queue = iter(texts)
    latencies: list[float] = []
    errors: list[str] = []

    async def worker(session: aiohttp.ClientSession) -> None:
        for text in queue:
            body = json.dumps({"instances": [text]})
            start = time.perf_counter()
            try:
                async with session.post(target, data=body) as response:
                    answer = await response.read()
                    if response.status != 200 or b"predictions" not in answer:
                        errors.append(f"{response.status} {answer[:100]!r}")
            except aiohttp.ClientError as error:
                errors.append(repr(error))
            latencies.append(time.perf_counter() - start)

    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(clients)))
        wall = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(texts),
        "errors": len(errors),
        "error_samples": errors[:3],
        "seconds": round(wall, 2),
        "texts_per_second": round(len(texts) / wall, 1),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
    }


def huge_body(url: str, size: int = 256 * 1024 * 1024) -> dict:
    """Stream a body declared as `size` bytes; read the answer as soon as there is one."""
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST /v1/models/sentiment:predict HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    chunk, sent, answer = b"x" * 65536, 0, b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        while sent < size:
            try:
                answer = sock.recv(65536)
                break
            except BlockingIOError:
                pass
            except ConnectionError:
                break
            try:
                sent += sock.send(chunk)
            except BlockingIOError:
                time.sleep(0.0005)
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        sock.settimeout(10)
        try:
            while b"\r\n\r\n" not in answer:
                part = sock.recv(65536)
                if not part:
                    break
                answer += part
        except (ConnectionError, TimeoutError):
            pass
    status = int(answer.split(b" ")[1]) if answer.startswith(b"HTTP/") else None
    return {"status": status, "body_bytes_sent": sent, "declared_bytes": size}


PATH_TRICKS = [
    "/v1/models/..%2F..%2Fetc%2Fpasswd:predict",
    "/v1/models/%2e%2e:predict",
    "/v1/models/../../etc/passwd",
    "/v1/models/.hidden:predict",
    "/v1/models/a%00b:predict",
    "/v1/models/sentiment%2F1:predict",
    "/v1/models/sentiment/versions/..:predict",
    "/v1/models/sentiment/versions/1%2F..%2F2:predict",
    "/v1/models/" + "a" * 5000 + ":predict",
    "/v1/models/sentiment/versions/-1:predict",
    "/v1/models/sentiment/versions/1e3:predict",
    "/v1/models//sentiment:predict",
    "/v1/models/sentiment:predict/../../x",
]


def hostile(url: str, junk_count: int = 200) -> dict:
    huge = huge_body(url)
    tricks = {path: post(url + path, b'{"instances": ["x"]}') for path in PATH_TRICKS}
    rng = random.Random(0)
    junk_bodies = []
    for i in range(junk_count):
        kind = i % 4
        if kind == 0:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096)))
        elif kind == 1:
            body = json.dumps(
                {"instances": rng.choice([5, None, {}, [[1, [2]]], [{"b64": "%%"}]])}
            ).encode()
        elif kind == 2:
            body = b'{"instances": ' + b"[" * rng.randrange(1, 20000)
        else:
            body = json.dumps(
                {rng.choice(["inputs", "x", "instances"]): "a", "inputs": [1.5]}
            ).encode()
        junk_bodies.append(body)
    junk = [post(f"{url}/v1/models/sentiment:predict", body) for body in junk_bodies]
    alive = (
        get(f"{url}/v1/models/sentiment") == 200
        and post(f"{url}/v1/models/sentiment:predict", b'{"instances": ["still here"]}') == 200
    )
    return {
        "huge_body": huge,
        "path_tricks_4xx": sum(400 <= s < 500 for s in tricks.values()),
        "path_tricks": len(tricks),
        "path_trick_statuses": sorted(set(tricks.values())),
        "junk_4xx": sum(400 <= s < 500 for s in junk),
        "junk": len(junk),
        "junk_statuses": sorted(set(junk)),
        "alive_after": alive,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-base-path",
        type=Path,
        help="Serve this base (must hold 'sentiment'); default: train a quick one.",
    )
    parser.add_argument("--data", type=Path, default=MR / "test.tsv")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--serve-args", default="", help="Extra flags for apps serve, e.g. '--max-batch-size 32'."
    )
    parser.add_argument("--output-md", type=Path)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as workdir:
        base = args.model_base_path or quick_model(Path(workdir))
        versions = sorted(int(p.name) for p in (base / "sentiment").iterdir() if p.name.isdigit())
        texts = read_texts(args.data, args.requests)
        baseline = in_process_baseline(base / "sentiment" / str(versions[-1]), texts)
        process, url = start_server(base, args.serve_args.split())
        try:
            asyncio.run(load_test(url, texts[: args.clients * 4], args.clients))  # warm-up
            served = asyncio.run(load_test(url, texts, args.clients))
            abuse = hostile(url)
        finally:
            process.terminate()
            exit_code = process.wait(60)
    ratio = served["texts_per_second"] / baseline
    served_ok = served["errors"] == 0 and ratio >= 0.5
    abuse_ok = (
        abuse["huge_body"]["status"] in (400, 413)
        and abuse["huge_body"]["body_bytes_sent"] < abuse["huge_body"]["declared_bytes"]
        and abuse["path_tricks_4xx"] == abuse["path_tricks"]
        and abuse["junk_4xx"] == abuse["junk"]
        and abuse["alive_after"]
    )
    command = (
        "python bench/serve_bench.py"
        + (f" --model-base-path {args.model_base_path}" if args.model_base_path else "")
        + (f" --serve-args '{args.serve_args}'" if args.serve_args else "")
    )
    huge = abuse["huge_body"]
    model = (
        str(base)
        if args.model_base_path
        else "a quick one-epoch run of " + str(CONFIG.relative_to(ROOT))
    )
    verdict = "PASS" if served_ok else "FAIL"
    lines = [
        "## Serving (`apps serve`)",
        "",
        f"`{command}` on {os.cpu_count()} cores ({platform.processor() or platform.machine()}, "
        f"shared with other work; load average at start {load:.1f}). Model: {model}; "
        f"{args.clients} clients on keep-alive connections, one MR test sentence per request.",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| requests / errors | {served['requests']} / {served['errors']} |",
        f"| served texts/s | {served['texts_per_second']} |",
        f"| latency p50 / p99 | {served['p50_ms']} ms / {served['p99_ms']} ms |",
        f"| in-process texts/s (batches of 32) | {baseline:.1f} |",
        f"| served / in-process | {ratio:.2f}x (target >= 0.5x) {verdict} |",
        f"| 256 MiB body | HTTP {huge['status']} after "
        f"{huge['body_bytes_sent'] / 2**20:.1f} MiB of it was sent |",
        f"| path tricks | {abuse['path_tricks_4xx']}/{abuse['path_tricks']} answered 4xx "
        f"({', '.join(map(str, abuse['path_trick_statuses']))}) |",
        f"| random junk bodies | {abuse['junk_4xx']}/{abuse['junk']} answered 4xx "
        f"({', '.join(map(str, abuse['junk_statuses']))}) |",
        f"| alive after abuse | {'yes' if abuse['alive_after'] else 'NO'} "
        f"(SIGTERM exit code {exit_code}) {'PASS' if abuse_ok else 'FAIL'} |",
    ]
    print("\n".join(lines))
    if args.output_md:
        args.output_md.parent.mkdir(parents=True, exist_ok=True)
        args.output_md.write_text("\n".join(lines) + "\n")
    print(
        json.dumps(
            {
                "bench": "serve",
                "served": served,
                "in_process_texts_per_second": round(baseline, 1),
                "ratio": round(ratio, 3),
                "hostile": abuse,
                "exit_code": exit_code,
                "pass": served_ok and abuse_ok,
            }
        )
    )


if __name__ == "__main__":
    main()
