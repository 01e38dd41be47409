"""The micro-batcher and the single model worker, with plain functions instead of a model."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from gemlm.serving import MicroBatcher, ModelWorker


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_are_gathered_into_one_job() -> None:
    calls: list[list[int]] = []

    def double(xs: list[int]) -> list[int]:
        calls.append(list(xs))
        return [2 * x for x in xs]

    async def main() -> list[list[int]]:
        worker = ModelWorker()
        batcher = MicroBatcher(worker, double, max_batch=64, max_wait=0.05)
        gate = threading.Event()
        worker.submit(gate.wait)  # the worker is busy: requests pile up
        tasks = [asyncio.create_task(batcher.submit([i, 100 + i])) for i in range(10)]
        await asyncio.sleep(0.1)
        gate.set()
        out = await asyncio.gather(*tasks)
        await batcher.aclose()
        worker.shutdown()
        return out

    out = run(main())
    assert out == [[2 * i, 200 + 2 * i] for i in range(10)]
    assert len(calls) == 1 and len(calls[0]) == 20


def test_max_batch_splits_jobs_and_order_is_kept() -> None:
    sizes: list[int] = []

    def ident(xs: list[int]) -> list[int]:
        sizes.append(len(xs))
        return list(xs)

    async def main() -> list[list[int]]:
        worker = ModelWorker()
        batcher = MicroBatcher(worker, ident, max_batch=8, max_wait=0.01)
        out = await asyncio.gather(*[batcher.submit([i] * 3) for i in range(10)])
        await batcher.aclose()
        worker.shutdown()
        return out

    assert run(main()) == [[i] * 3 for i in range(10)]
    assert sum(sizes) == 30 and len(sizes) >= 3 and max(sizes) <= 8 + 2


def test_a_failing_job_fails_its_requests_and_the_batcher_goes_on() -> None:
    def flaky(xs: list[int]) -> list[int]:
        if 0 in xs:
            raise ValueError("boom")
        return xs

    async def main() -> list[int]:
        worker = ModelWorker()
        batcher = MicroBatcher(worker, flaky, max_batch=4, max_wait=0)
        with pytest.raises(ValueError, match="boom"):
            await batcher.submit([0])
        out = await batcher.submit([5])
        await batcher.aclose()
        worker.shutdown()
        return out

    assert run(main()) == [5]


def test_a_cancelled_request_is_dropped_before_it_runs() -> None:
    seen: list[int] = []

    def record(xs: list[int]) -> list[int]:
        seen.extend(xs)
        return xs

    async def main() -> None:
        worker = ModelWorker()
        batcher = MicroBatcher(worker, record, max_batch=64, max_wait=0.05)
        gone = asyncio.create_task(batcher.submit([1]))
        kept = asyncio.create_task(batcher.submit([2]))
        await asyncio.sleep(0)
        gone.cancel()
        assert await kept == [2]
        await batcher.aclose()
        worker.shutdown()

    run(main())
    assert seen == [2]


def test_worker_never_runs_two_jobs_at_once() -> None:
    active, peak = 0, 0
    lock = threading.Lock()

    def job() -> str:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.01)
        with lock:
            active -= 1
        return threading.current_thread().name

    async def main() -> set[str]:
        worker = ModelWorker()
        names = await asyncio.gather(*[worker.run(job) for _ in range(8)])
        worker.shutdown()
        return set(names)

    names = run(main())
    assert peak == 1 and len(names) == 1 and next(iter(names)).startswith("gemlm-model")


def test_urgent_jobs_run_before_queued_ones_and_inside_a_long_job() -> None:
    order: list[str] = []
    worker = ModelWorker()
    gate, inside = threading.Event(), threading.Event()

    def long_job() -> int:  # a generation: steps, with run_urgent between them
        inside.set()
        gate.wait()
        ran = 0
        for step in range(3):
            order.append(f"step{step}")
            ran += worker.run_urgent()
        return ran

    first = worker.submit(long_job)
    inside.wait()
    later = worker.submit(order.append, "normal")
    embed = worker.submit(order.append, "urgent", urgent=True)
    gate.set()
    assert first.result(timeout=10) == 1 and embed.result(timeout=10) is None
    later.result(timeout=10)
    # the urgent job ran between the long job's first two steps, the normal one after it
    assert order == ["step0", "urgent", "step1", "step2", "normal"]
    assert worker.run_urgent() == 0  # outside a job: nothing runs here
    blocker, started = threading.Event(), threading.Event()
    worker.submit(lambda: started.set() or blocker.wait())
    started.wait()
    queued = worker.submit(order.append, "never")
    urgent_queued = worker.submit(order.append, "never", urgent=True)
    threading.Timer(0.05, blocker.set).start()
    worker.shutdown()  # finishes the running job, drops the queued ones
    assert queued.cancelled() and urgent_queued.cancelled() and "never" not in order
    with pytest.raises(RuntimeError, match="shut down"):
        worker.submit(order.append, "late")


def test_embedding_batches_are_urgent_for_the_worker() -> None:
    async def main() -> list[str]:
        worker = ModelWorker()
        order: list[str] = []
        batcher = MicroBatcher(worker, lambda xs: order.extend(xs) or xs, max_wait=0)
        gate = threading.Event()
        worker.submit(gate.wait)
        generation = asyncio.ensure_future(worker.run(order.append, "generation"))
        embedded = asyncio.ensure_future(batcher.submit(["embedding"]))
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(generation, embedded)
        await batcher.aclose()
        worker.shutdown()
        return order

    assert run(main()) == ["embedding", "generation"]  # queued after, run before
