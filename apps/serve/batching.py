"""Dynamic batching: concurrent requests for one signature run as one model call.

The knobs are TF Serving's batching parameters. A batch closes when it holds
`max_batch_size` rows or its first request has waited `batch_timeout_micros`; it then
waits for one of `num_batch_threads` threads, and requests that arrive meanwhile join
it (up to the size limit), so a busy server forms larger batches on its own. Rows
beyond `max_enqueued_batches` full batches are refused (RESOURCE_EXHAUSTED, HTTP 429),
as TF Serving refuses when its queue is full. Models run on the thread pool, never on
the event loop, and every caller gets back exactly its own rows.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from apps.serve.errors import ResourceExhausted, ServingError

log = logging.getLogger(__name__)

Arrays = Mapping[str, np.ndarray]
RunFunction = Callable[[Arrays], dict[str, np.ndarray]]


@dataclass(frozen=True)
class BatchingParameters:
    """TF Serving's `--batching_parameters_file` fields, with defaults for a small CPU box."""

    max_batch_size: int = 64
    batch_timeout_micros: int = 1000
    num_batch_threads: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))
    max_enqueued_batches: int = 100

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_timeout_micros < 0:
            raise ValueError(
                f"batch_timeout_micros must be 0 or more, got {self.batch_timeout_micros}"
            )

    def to_text(self) -> str:
        """The text proto TF Serving reads with `--enable_batching --batching_parameters_file`."""
        return "".join(
            f"{name} {{ value: {getattr(self, name)} }}\n"
            for name in (
                "max_batch_size",
                "batch_timeout_micros",
                "num_batch_threads",
                "max_enqueued_batches",
            )
        )


class BatchPool:
    """The threads that run models, shared by every batcher: `num_batch_threads` at once."""

    def __init__(self, parameters: BatchingParameters) -> None:
        self.parameters = parameters
        self.executor = ThreadPoolExecutor(parameters.num_batch_threads, thread_name_prefix="batch")
        self._slots: asyncio.Semaphore | None = None

    @property
    def slots(self) -> asyncio.Semaphore:
        """Created lazily so that it belongs to the event loop that uses it."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.parameters.num_batch_threads)
        return self._slots

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=False)


@dataclass
class _Request:
    inputs: Arrays
    rows: int
    future: asyncio.Future
    enqueued: float


class Batcher:
    """Gathers requests for one signature of one model version into batched calls."""

    def __init__(self, run: RunFunction, pool: BatchPool, batchable: bool = True) -> None:
        self._run = run
        self._pool = pool
        self._batchable = batchable
        self._queue: collections.deque[_Request] = collections.deque()
        self._queued_rows = 0
        self._arrived = asyncio.Event()
        self._worker: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()
        self.calls = 0  # model calls made, for tests and the benchmark
        self.rows = 0

    @property
    def parameters(self) -> BatchingParameters:
        return self._pool.parameters

    async def submit(self, inputs: Arrays) -> dict[str, np.ndarray]:
        """Run `inputs` (arrays sharing their first dimension) in some batch; return its rows."""
        rows = batch_rows(inputs) if self._batchable else None
        loop = asyncio.get_running_loop()
        if rows is None or rows > self.parameters.max_batch_size:
            return await self._run_alone(inputs)  # cannot be split back out of a batch
        limit = self.parameters.max_enqueued_batches * self.parameters.max_batch_size
        if self._queued_rows + rows > limit:
            raise ResourceExhausted(
                f"The batch queue is full ({self.parameters.max_enqueued_batches} batches of "
                f"{self.parameters.max_batch_size} rows waiting): retry later"
            )
        request = _Request(inputs, rows, loop.create_future(), loop.time())
        self._queue.append(request)
        self._queued_rows += rows
        self._arrived.set()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._work())
        return await request.future

    async def _run_alone(self, inputs: Arrays) -> dict[str, np.ndarray]:
        async with self._pool.slots:
            self.calls += 1
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool.executor, self._run, inputs)

    async def _work(self) -> None:
        """Form batches while requests are queued; each runs on a free batch thread."""
        loop = asyncio.get_running_loop()
        timeout = self.parameters.batch_timeout_micros / 1e6
        while self._queue:
            deadline = self._queue[0].enqueued + timeout
            while self._queued_rows < self.parameters.max_batch_size:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
            await self._pool.slots.acquire()
            batch = self._take()
            if not batch:
                self._pool.slots.release()
                continue
            task = loop.create_task(self._execute(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    def _take(self) -> list[_Request]:
        """Up to `max_batch_size` rows from the queue's head, skipping abandoned requests."""
        batch, rows = [], 0
        while self._queue:
            request = self._queue[0]
            if request.future.done():  # its caller timed out or went away
                self._queue.popleft()
                self._queued_rows -= request.rows
                continue
            if batch and rows + request.rows > self.parameters.max_batch_size:
                break
            self._queue.popleft()
            self._queued_rows -= request.rows
            batch.append(request)
            rows += request.rows
        return batch

    async def _execute(self, batch: list[_Request]) -> None:
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._pool.executor, self._run_batch, batch)
        except BaseException as exc:  # noqa: BLE001 - every caller must hear about it
            results = [exc] * len(batch)
        finally:
            self._pool.slots.release()
        for request, result in zip(batch, results, strict=True):
            if request.future.done():
                continue
            if isinstance(result, BaseException):
                request.future.set_exception(result)
            else:
                request.future.set_result(result)

    def _run_batch(self, batch: list[_Request]) -> list[dict[str, np.ndarray] | BaseException]:
        """On a batch thread: one call per group of same-shaped requests, split back per caller."""
        results: list = [None] * len(batch)
        groups: dict[tuple, list[int]] = {}
        for index, request in enumerate(batch):
            groups.setdefault(_inner_shapes(request.inputs), []).append(index)
        for indices in groups.values():
            members = [batch[i] for i in indices]
            for index, result in zip(indices, self._run_group(members), strict=True):
                results[index] = result
        return results

    def _run_group(self, members: list[_Request]) -> list:
        if len(members) == 1:
            return [self._call(members[0].inputs, members[0].rows)]
        keys = members[0].inputs.keys()
        merged = {key: np.concatenate([m.inputs[key] for m in members]) for key in keys}
        total = sum(m.rows for m in members)
        outcome = self._call(merged, total)
        if isinstance(outcome, BaseException) or any(
            np.ndim(value) == 0 or value.shape[0] != total for value in outcome.values()
        ):
            # One bad request must not fail the others, and outputs without a batch
            # dimension cannot be split: run each request on its own.
            return [self._call(m.inputs, m.rows) for m in members]
        results, start = [], 0
        for member in members:
            stop = start + member.rows
            results.append({key: value[start:stop] for key, value in outcome.items()})
            start = stop
        return results

    def _call(self, inputs: Arrays, rows: int) -> dict[str, np.ndarray] | BaseException:
        self.calls += 1
        self.rows += rows
        try:
            return self._run(inputs)
        except ServingError as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - reported to the caller, not the thread
            log.exception("model call failed")
            return ServingError(f"{type(exc).__name__}: {exc}", "INTERNAL")


def batch_rows(inputs: Arrays) -> int | None:
    """The shared first dimension of every input, or None when they do not share one."""
    sizes = {np.shape(value)[0] if np.ndim(value) else None for value in inputs.values()}
    if len(sizes) != 1 or None in sizes:
        return None
    (rows,) = sizes
    return rows if rows > 0 else None


def _inner_shapes(inputs: Arrays) -> tuple:
    """Requests batch together only when every input agrees past the first dimension."""
    return tuple(
        (key, np.shape(value)[1:], np.asarray(value).dtype.str)
        for key, value in sorted(inputs.items())
    )
