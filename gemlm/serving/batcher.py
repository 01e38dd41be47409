"""One worker thread for all model compute, and an asyncio micro-batcher in front of it.

Why one thread: torch already uses both cores for one forward pass; running an embedding batch and
a generation step at the same time would oversubscribe them and slow both. Every job (tokenizing,
embedding, generating) is therefore queued on one worker thread, while the event loop stays free
to answer ``/health`` and accept requests.

Why embeddings first: a generation holds the model for seconds (a token per forward), an
embedding batch for a fraction of one. Jobs run one at a time, urgent ones (embedding batches)
before the others, and a long job may call :meth:`ModelWorker.run_urgent` between its steps (the
generation engine does, between tokens) to run the urgent jobs queued meanwhile on its own
thread. So an embedding request waits for at most one decode step, never for whole generations.

Why micro-batches: many small embedding requests cost far less as one padded batch. Requests
queue up; a batch closes at ``max_batch`` inputs or ``max_wait`` seconds after its first request,
runs as one job, and each request gets its own slice of the results. While a job runs, new
requests accumulate, so under load batches fill up without any waiting.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

P = TypeVar("P")
X = TypeVar("X")
Y = TypeVar("Y")
R = TypeVar("R")

_Job = tuple[Future, Callable[[], Any]]


@dataclass
class Done(Generic[R]):
    """The last item of ``ModelWorker.relay``: the job's return value."""

    result: R


def _execute(future: Future, fn: Callable[[], Any]) -> None:
    if not future.set_running_or_notify_cancel():  # cancelled before it started: dropped
        return
    try:
        future.set_result(fn())
    except BaseException as exc:  # the awaiting caller re-raises it
        future.set_exception(exc)


class ModelWorker:
    """One thread: jobs run one at a time, urgent ones first, each kind in submission order."""

    def __init__(self) -> None:
        self._urgent: deque[_Job] = deque()
        self._normal: deque[_Job] = deque()
        self._cv = threading.Condition()
        self._closed = False
        self.busy = False  # a job is running (run_urgent may be called from inside it)
        self.urgent_inline = 0  # urgent jobs run by run_urgent inside another job
        self._thread = threading.Thread(target=self._loop, name="gemlm-model", daemon=True)
        self._thread.start()

    def submit(
        self, fn: Callable[..., R], *args: Any, urgent: bool = False, **kwargs: Any
    ) -> Future[R]:
        """Queue ``fn`` from any thread; ``urgent`` jobs run before the others."""
        future: Future[R] = Future()
        with self._cv:
            if self._closed:
                raise RuntimeError("the model worker is shut down")
            (self._urgent if urgent else self._normal).append(
                (future, partial(fn, *args, **kwargs))
            )
            self._cv.notify()
        return future

    async def run(self, fn: Callable[..., R], *args: Any, urgent: bool = False, **kwargs: Any) -> R:
        """Run ``fn`` on the worker thread and await its result (a job not yet started is
        dropped if the awaiting request is cancelled)."""
        return await asyncio.wrap_future(self.submit(fn, *args, urgent=urgent, **kwargs))

    def run_urgent(self) -> int:
        """Run the urgent jobs queued now, on the calling thread; returns how many ran.

        Only for code running *inside* the current job (its own thread, or one it waits on),
        between its steps: the worker thread is then inside that job, so nothing else touches
        the model meanwhile. Does nothing when no job is running."""
        ran = 0
        while self.busy:
            with self._cv:
                if not self._urgent:
                    break
                future, fn = self._urgent.popleft()
            _execute(future, fn)
            ran += 1
        self.urgent_inline += ran
        return ran

    async def relay(self, job: Callable[[Callable[[P], None]], R]) -> AsyncIterator[P | Done[R]]:
        """Run ``job(emit)`` on the worker; yield each piece it emits as it comes, then
        ``Done(result)``. Streams text from generation running off the event loop."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[P] = asyncio.Queue()
        task = asyncio.ensure_future(
            self.run(job, lambda piece: loop.call_soon_threadsafe(queue.put_nowait, piece))
        )
        while not (task.done() and queue.empty()):
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()
        yield Done(task.result())

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not (self._urgent or self._normal or self._closed):
                    self._cv.wait()
                if self._closed:
                    return
                future, fn = (self._urgent or self._normal).popleft()
                self.busy = True
            try:
                _execute(future, fn)
            finally:
                self.busy = False

    @property
    def closed(self) -> bool:
        return self._closed

    def shutdown(self) -> None:
        """Finish the running job, drop queued ones, end the thread."""
        with self._cv:
            self._closed = True
            dropped = [*self._urgent, *self._normal]
            self._urgent.clear()
            self._normal.clear()
            self._cv.notify_all()
        for future, _ in dropped:
            future.cancel()
        if threading.current_thread() is not self._thread:
            self._thread.join()


@dataclass
class _Request(Generic[X, Y]):
    inputs: Sequence[X]
    future: asyncio.Future[list[Y]] = field(repr=False)


class MicroBatcher(Generic[X, Y]):
    """Gathers concurrent ``submit(inputs)`` calls into jobs of ``fn(all_inputs)`` on the worker.

    ``fn`` maps a list of inputs to one result per input, in order.
    """

    def __init__(
        self,
        worker: ModelWorker,
        fn: Callable[[list[X]], list[Y]],
        *,
        max_batch: int = 64,
        max_wait: float = 0.005,
    ) -> None:
        if max_batch < 1 or max_wait < 0:
            raise ValueError("max_batch must be >= 1 and max_wait >= 0")
        self.worker, self.fn, self.max_batch, self.max_wait = worker, fn, max_batch, max_wait
        self._queue: asyncio.Queue[_Request[X, Y]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # jobs run so far
        self.inputs = 0  # inputs embedded so far

    async def submit(self, inputs: Sequence[X]) -> list[Y]:
        """Results for ``inputs`` once the micro-batch holding them has run."""
        if not inputs:
            return []
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._queue = self._queue or asyncio.Queue()
            self._task = loop.create_task(self._loop(), name="gemlm-batcher")
        assert self._queue is not None
        request: _Request[X, Y] = _Request(inputs, loop.create_future())
        self._queue.put_nowait(request)
        return await request.future

    async def _gather(self) -> list[_Request[X, Y]]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        size = len(batch[0].inputs)
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while size < self.max_batch:
            if self._queue.empty():
                timeout = deadline - asyncio.get_running_loop().time()
                if timeout <= 0:
                    break
                try:
                    request = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    break
            else:
                request = self._queue.get_nowait()
            batch.append(request)
            size += len(request.inputs)
        return [r for r in batch if not r.future.done()]  # drop requests whose client left

    async def _loop(self) -> None:
        while True:
            batch = await self._gather()
            if not batch:
                continue
            flat = [x for r in batch for x in r.inputs]
            try:
                results = await self.worker.run(self.fn, flat, urgent=True)
                if len(results) != len(flat):
                    raise RuntimeError(f"batch function gave {len(results)} for {len(flat)}")
            except asyncio.CancelledError:  # closing: nobody will deliver these results
                for r in batch:
                    r.future.cancel()
                raise
            except Exception as exc:  # every request of the batch sees the failure
                for r in batch:
                    if not r.future.done():
                        r.future.set_exception(exc)
                continue
            self.batches += 1
            self.inputs += len(flat)
            start = 0
            for r in batch:
                if not r.future.done():
                    r.future.set_result(results[start : start + len(r.inputs)])
                start += len(r.inputs)

    async def aclose(self) -> None:
        """Stop gathering; requests still queued get a CancelledError."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        while self._queue is not None and not self._queue.empty():
            self._queue.get_nowait().future.cancel()
