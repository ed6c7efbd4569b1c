"""Dynamic batching: concurrent requests share model calls and each gets its own rows."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from serve_helpers import http

from apps.serve.batching import Batcher, BatchingParameters, BatchPool
from apps.serve.errors import InvalidArgument, ResourceExhausted


class Doubler:
    """A fake model: rows in, rows doubled out; records every call's batch size."""

    def __init__(self, delay: float = 0.01, fail_on: float | None = None) -> None:
        self.sizes: list[int] = []
        self.delay, self.fail_on = delay, fail_on
        self.threads: set[str] = set()

    def __call__(self, inputs):
        self.threads.add(threading.current_thread().name)
        x = inputs["x"]
        if self.fail_on is not None and self.fail_on in x:
            raise InvalidArgument("bad row")
        self.sizes.append(len(x))
        time.sleep(self.delay)
        return {"y": x * 2, "n": np.full(len(x), len(x))}


def run(coroutine):
    return asyncio.run(coroutine)


def test_concurrent_requests_are_batched_and_get_their_own_rows():
    model = Doubler()
    pool = BatchPool(
        BatchingParameters(max_batch_size=8, batch_timeout_micros=20000, num_batch_threads=1)
    )

    async def main():
        batcher = Batcher(model, pool)
        calls = [batcher.submit({"x": np.array([float(i), float(i) + 0.5])}) for i in range(20)]
        return await asyncio.gather(*calls), batcher

    results, batcher = run(main())
    for i, result in enumerate(results):
        assert result["y"].tolist() == [2.0 * i, 2.0 * i + 1.0]
    assert sum(model.sizes) == 40 and max(model.sizes) <= 8
    assert batcher.calls == len(model.sizes) < 20
    assert all(name.startswith("batch") for name in model.threads)  # never the event loop
    pool.shutdown()


def test_a_bad_request_fails_alone():
    model = Doubler(fail_on=-1.0)
    pool = BatchPool(
        BatchingParameters(max_batch_size=16, batch_timeout_micros=20000, num_batch_threads=1)
    )

    async def main():
        batcher = Batcher(model, pool)
        calls = [batcher.submit({"x": np.array([v])}) for v in (1.0, -1.0, 3.0)]
        return await asyncio.gather(*calls, return_exceptions=True)

    good, bad, also_good = run(main())
    assert isinstance(bad, InvalidArgument)
    assert good["y"].tolist() == [2.0] and also_good["y"].tolist() == [6.0]
    pool.shutdown()


def test_a_full_queue_is_resource_exhausted():
    model = Doubler(delay=0.2)
    pool = BatchPool(
        BatchingParameters(
            max_batch_size=2, batch_timeout_micros=0, num_batch_threads=1, max_enqueued_batches=1
        )
    )

    async def main():
        batcher = Batcher(model, pool)
        calls = [batcher.submit({"x": np.array([1.0])}) for _ in range(8)]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = run(main())
    assert any(isinstance(r, ResourceExhausted) for r in results)
    assert any(isinstance(r, dict) for r in results)
    pool.shutdown()


def test_requests_of_different_inner_shapes_run_separately():
    model = Doubler()
    pool = BatchPool(
        BatchingParameters(max_batch_size=16, batch_timeout_micros=20000, num_batch_threads=1)
    )

    async def main():
        batcher = Batcher(model, pool)
        return await asyncio.gather(
            batcher.submit({"x": np.ones((1, 3))}), batcher.submit({"x": np.ones((2, 5))})
        )

    small, large = run(main())
    assert small["y"].shape == (1, 3) and large["y"].shape == (2, 5)
    pool.shutdown()


@pytest.mark.parametrize(
    "bad", [dict(max_batch_size=0), dict(num_batch_threads=0), dict(batch_timeout_micros=-1)]
)
def test_parameters_are_checked(bad):
    with pytest.raises(ValueError):
        BatchingParameters(**bad)


def test_parameters_file_is_tf_serving_text_proto():
    """`name { value: N }` per field, as TF Serving's BatchingParameters text proto reads."""
    text = BatchingParameters(
        max_batch_size=32, batch_timeout_micros=500, num_batch_threads=2, max_enqueued_batches=10
    ).to_text()
    fields = dict(re.findall(r"^(\w+) \{ value: (\d+) \}$", text, re.MULTILINE))
    assert fields == {
        "max_batch_size": "32",
        "batch_timeout_micros": "500",
        "num_batch_threads": "2",
        "max_enqueued_batches": "10",
    }


def test_the_server_batches_concurrent_rest_requests(served, in_process):
    """16 clients at once, one text each: fewer model calls than requests, right rows back."""
    texts = [f"review number {i} was {'great' if i % 2 else 'dull'}" for i in range(16)]
    loaded = served.server.registry.get("sentiment")
    before = {name: (b.calls, b.rows) for name, b in loaded.batchers.items()}

    def one(text):
        return http(f"{served.url}/v1/models/sentiment:predict", {"instances": [text]})

    with ThreadPoolExecutor(16) as clients:
        answers = list(clients.map(one, texts))
    expected = in_process(texts)
    for i, (status, body) in enumerate(answers):
        assert status == 200, body
        (row,) = body["predictions"]
        np.testing.assert_allclose(row["scores"], expected["scores"][i], rtol=1e-5, atol=1e-6)
        assert row["label"] == expected["label"][i].decode()
    batcher = loaded.batchers["serving_default"]
    calls0, rows0 = before.get("serving_default", (0, 0))
    assert batcher.rows - rows0 == 16
    assert batcher.calls - calls0 < 16
