"""Bounded concurrency for inference: a fixed pool of worker threads and a bounded queue.

A request takes a slot once its upload has arrived (a slow upload holds no
slot) and gives it back when its inference has finished, so at most
`workers + queue_size` inferences are running or waiting at once. Jobs wait in
one first-in, first-out queue and run in the order they arrived. A request
that finds every slot taken waits in a line, also first-in, first-out, for up
to `line_wait_s` (at most `line_size` of them): a freed slot goes to the
longest-waiting request, never to one that arrives later, so clients that send
back to back cannot starve the others. Past the wait, or with the line full,
the request is refused with 503 and a Retry-After estimated from recent
inference times, instead of piling up. Threads suit onnxruntime, which
releases the GIL while it runs.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slt_serve.errors import ApiError


class WorkerPool:
    """`workers` threads running jobs; `queue_size` more requests may wait for them."""

    def __init__(
        self, workers: int, queue_size: int, line_size: int = 0, line_wait_s: float = 0.0
    ):
        if workers < 1 or queue_size < 0 or line_size < 0 or line_wait_s < 0:
            raise ValueError(
                f"workers={workers} must be ≥ 1; queue_size={queue_size}, line_size={line_size}"
                f" and line_wait_s={line_wait_s} ≥ 0"
            )
        self.workers, self.queue_size = workers, queue_size
        self.line_size, self.line_wait_s = line_size, line_wait_s
        self.capacity = workers + queue_size
        self._line: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = deque()
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="slt-infer")
        self._lock = threading.Lock()
        self._in_flight = 0
        self._job_s = 0.0  # moving average of a job's duration, for Retry-After
        self.completed = 0
        self.rejected = 0
        self.closed = False

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        """Requests in line for a slot."""
        return len(self._line)

    async def wait_for_slot(self) -> Slot:
        """A slot for one request, waiting in line (FIFO) up to `line_wait_s` when all are
        taken; 503 with Retry-After past that, or when the line is full."""
        with self._lock:
            self._check_open()
            if self._in_flight < self.capacity and not self._line:
                self._in_flight += 1
                return Slot(self)
            if len(self._line) >= self.line_size or self.line_wait_s <= 0:
                raise self._busy()
            loop = asyncio.get_running_loop()
            place = (loop, loop.create_future())
            self._line.append(place)
        try:
            await asyncio.wait_for(asyncio.shield(place[1]), self.line_wait_s)
        except TimeoutError:
            with self._lock:
                if place in self._line:
                    self._line.remove(place)
                    raise self._busy() from None
            return Slot(self)  # handed over just as the wait ended
        except ApiError:  # refused while in line: the server is shutting down
            raise
        except BaseException:  # cancelled: the client went away
            with self._lock:
                if place in self._line:
                    self._line.remove(place)
                    raise
            self.release()  # handed over as it went: pass it on
            raise
        return Slot(self)

    def _check_open(self) -> None:
        if self.closed:
            raise ApiError(503, "shutting_down", "the server is shutting down; retry later")

    def _busy(self) -> ApiError:
        """503 for a request that found no place (called holding the lock)."""
        self.rejected += 1
        retry = self.retry_after()
        return ApiError(
            503,
            "busy",
            f"all {self.workers} worker(s) are busy and {self.queue_size} request(s) are "
            f"waiting; retry in about {retry} s",
            headers={"Retry-After": str(retry)},
        )

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead drained at the recent job rate."""
        rounds = max(1, math.ceil(self._in_flight / self.workers))
        return max(1, math.ceil(self._job_s * rounds))

    def release(self) -> None:
        """Give back one slot (a `Slot` calls it once): to the first request in line, if any."""
        with self._lock:
            if self._line:
                loop, future = self._line.popleft()
                loop.call_soon_threadsafe(_grant, future)
                return
            self._in_flight -= 1

    def submit(self, job: Callable[[], Any]):
        """Queue `job` behind those already queued (FIFO); a `concurrent.futures.Future`."""
        return self._executor.submit(job)

    def record(self, seconds: float) -> None:
        """One job finished after `seconds`: counted, and folded into the Retry-After estimate."""
        with self._lock:
            self.completed += 1
            self._job_s = seconds if self.completed == 1 else 0.8 * self._job_s + 0.2 * seconds

    def close(self) -> None:
        """Refuse new requests and those in line; jobs already queued still run."""
        with self._lock:
            self.closed = True
            line, self._line = list(self._line), deque()
        for loop, future in line:
            loop.call_soon_threadsafe(_refuse, future)
        self._executor.shutdown(wait=False, cancel_futures=False)


def _grant(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _refuse(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(ApiError(503, "shutting_down", "the server is shutting down; retry later"))


class Slot:
    """One request's place in the pool; released once, after its job (if any) has finished."""

    def __init__(self, pool: WorkerPool):
        self._pool = pool
        self._released = False
        self._handed_to_job = False

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` on a worker; the slot is released when the job ends, even if the
        request waiting for it is cancelled (the job keeps its place until it is done)."""
        pool = self._pool

        def job():
            start = time.perf_counter()
            try:
                return fn(*args)
            finally:
                pool.record(time.perf_counter() - start)
                self._release()

        future = pool.submit(job)
        self._handed_to_job = True
        return await asyncio.wrap_future(future)

    def release_unless_running(self) -> None:
        """Called when the request ends: give the slot back unless a job now owns it."""
        if not self._handed_to_job:
            self._release()

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._pool.release()
