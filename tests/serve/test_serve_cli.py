"""`apps serve` and `apps models`: the process, its shutdown, and its one-line errors."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time

from cli_helpers import run_cli
from serve_helpers import apps_process, free_port, http, wait_for_http


def test_models_list_shows_versions_signatures_and_metrics(exported):
    result = run_cli("models", "list", exported)
    assert result.exit_code == 0, result.output
    assert "sentiment  versions 1 (newest 1, task sentiment)" in result.output
    assert (
        "serving_default: text string[?] -> label string[?], label_id int64[?], "
        "scores float32[?,2]" in result.output
    )
    assert "metrics: accuracy" in result.output
    report = json.loads(run_cli("models", "list", exported, "--json").output)
    assert report["sentiment"]["versions"] == [1]
    assert report["sentiment"]["signatures"]["serving_default"]["inputs"] == {"text": "string[?]"}


def test_models_config_rewrites_models_config(model_base):
    (model_base / "models.config").unlink()
    result = run_cli("models", "config", model_base)
    assert result.exit_code == 0, result.output
    text = (model_base / "models.config").read_text()
    assert "name: 'sentiment'" in text and "base_path: '/models/sentiment'" in text
    run_cli("models", "config", model_base, "--local")
    assert (
        f"base_path: '{model_base.resolve()}/sentiment'"
        in (model_base / "models.config").read_text()
    )


def test_print_tf_serving_command(model_base):
    result = run_cli(
        "serve",
        "--model-base-path",
        model_base,
        "--print-tf-serving-command",
        "--max-batch-size",
        "32",
        "--batch-timeout-micros",
        "500",
    )
    assert result.exit_code == 0, result.output
    assert "docker run --rm -p 8501:8501 -p 8500:8500 -v" in result.output
    assert "tensorflow/serving --model_config_file=/models/models.config" in result.output
    assert "--gpus all" in result.output and "tensorflow/serving:latest-gpu" in result.output
    assert "--enable_batching --batching_parameters_file=/models/batching.config" in result.output
    batching = (model_base / "batching.config").read_text()
    assert "max_batch_size { value: 32 }" in batching
    assert "batch_timeout_micros { value: 500 }" in batching


def test_write_batching_config(tmp_path):
    target = tmp_path / "batching.txt"
    result = run_cli("serve", "--write-batching-config", target, "--num-batch-threads", "3")
    assert result.exit_code == 0, result.output
    assert "num_batch_threads { value: 3 }" in target.read_text()


def test_user_errors_are_one_sentence(tmp_path, model_base):
    missing = run_cli("serve", "--model-base-path", tmp_path / "nowhere")
    assert missing.exit_code == 1 and "does not exist" in missing.output
    assert len(missing.output.strip().splitlines()) == 1
    bad_limit = run_cli("serve", "--model-base-path", model_base, "--body-limit", "lots")
    assert bad_limit.exit_code == 2 and "--body-limit" in bad_limit.output
    bad_batch = run_cli("serve", "--model-base-path", model_base, "--max-batch-size", "0")
    assert bad_batch.exit_code == 2 and "--max-batch-size" in bad_batch.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_cli("serve", "--model-base-path", model_base, "--rest-port", port)
    assert busy.exit_code == 1 and f"port {port}" in busy.output and "--rest-port" in busy.output
    assert run_cli("models", "list", tmp_path / "nowhere").exit_code == 1


def test_sigterm_finishes_requests_in_flight(exported):
    """A request waiting in a 2 s batch window when SIGTERM arrives still gets its answer."""
    rest, grpc_port = free_port(), free_port()
    process = apps_process(
        "serve",
        "--model-base-path",
        exported,
        "--rest-port",
        rest,
        "--grpc-port",
        grpc_port,
        "--batch-timeout-micros",
        2_000_000,
        "--poll-seconds",
        0,
    )
    try:
        url = f"http://127.0.0.1:{rest}"
        wait_for_http(f"{url}/v1/models/sentiment", process)
        answers = []
        client = threading.Thread(
            target=lambda: answers.append(
                http(f"{url}/v1/models/sentiment:predict", {"instances": ["in flight"]})
            )
        )
        client.start()
        time.sleep(0.7)  # the request is now waiting for its batch to fill
        process.send_signal(signal.SIGTERM)
        client.join(30)
        assert process.wait(30) == 0
        output = process.stdout.read()
        assert answers and answers[0][0] == 200, (answers, output)
        assert "Models (versions served): sentiment 1" in output and "Stopped." in output
        try:
            status = http(f"{url}/v1/models/sentiment", timeout=2)[0]
        except OSError:
            status = None
        assert status is None  # the port is closed
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
