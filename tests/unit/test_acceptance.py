"""What a /collect request waits on before its 202 (ingest.sinks.Acceptance): settled once for
all the batches of a produce round, from another thread, waking each waiting event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ingest.sinks import Acceptance, SinkUnavailable


def test_a_request_waits_until_every_message_is_acknowledged() -> None:
    acceptance = Acceptance()
    acceptance.expect_messages(2)

    async def scenario() -> list[str]:
        steps: list[str] = []
        waiting = asyncio.ensure_future(acceptance.wait(timeout=5))
        await asyncio.sleep(0.01)
        # Delivery reports come on Kafka's threads, not the event loop's.
        threading.Thread(target=acceptance.message_acknowledged).start()
        await asyncio.sleep(0.05)
        steps.append("pending" if not waiting.done() else "early")
        threading.Thread(target=acceptance.message_acknowledged).start()
        await asyncio.wait_for(waiting, 5)
        steps.append("answered")
        return steps

    assert asyncio.run(scenario()) == ["pending", "answered"]


def test_requests_on_several_event_loops_are_all_answered() -> None:
    acceptance = Acceptance()
    acceptance.expect_messages(1)
    answered: list[int] = []
    started = threading.Barrier(4)

    def serve(number: int) -> None:
        async def request() -> None:
            waiting = asyncio.ensure_future(acceptance.wait(timeout=5))
            await asyncio.sleep(0)
            started.wait()
            await waiting
            answered.append(number)

        asyncio.run(request())

    servers = [threading.Thread(target=serve, args=(n,)) for n in range(3)]
    for server in servers:
        server.start()
    started.wait()
    acceptance.message_acknowledged()
    for server in servers:
        server.join(timeout=5)
    assert sorted(answered) == [0, 1, 2]


def test_a_timeout_answers_that_request_only() -> None:
    acceptance = Acceptance()
    acceptance.expect_messages(1)

    async def scenario() -> None:
        impatient = acceptance.wait(timeout=0.01)
        patient = asyncio.ensure_future(acceptance.wait(timeout=5))
        with pytest.raises(TimeoutError):
            await impatient
        acceptance.message_acknowledged()
        await patient  # not cancelled with the other one

    asyncio.run(scenario())


def test_rows_neither_delivered_nor_spooled_fail_their_requests() -> None:
    acceptance = Acceptance()
    acceptance.expect_messages(1)
    acceptance.settle(SinkUnavailable("spool not writable"))

    async def scenario() -> None:
        with pytest.raises(SinkUnavailable, match="spool not writable"):
            await acceptance.wait(timeout=1)

    asyncio.run(scenario())
    # A late acknowledgement changes nothing once settled.
    acceptance.message_acknowledged()


def test_requests_of_one_loop_share_one_timer_and_keep_their_own_deadlines() -> None:
    acceptance = Acceptance()
    acceptance.expect_messages(1)

    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        timers_before = sum(not timer.cancelled() for timer in loop._scheduled)  # type: ignore[attr-defined]
        started = loop.time()
        later = asyncio.ensure_future(acceptance.wait(timeout=0.3))
        sooner = asyncio.ensure_future(acceptance.wait(timeout=0.05))
        patient = [asyncio.ensure_future(acceptance.wait(timeout=5)) for _ in range(50)]
        await asyncio.sleep(0)
        timers = sum(not timer.cancelled() for timer in loop._scheduled)  # type: ignore[attr-defined]
        assert timers - timers_before == 1  # not one per request
        outcomes = []
        with pytest.raises(TimeoutError):
            await sooner
        outcomes.append(f"sooner after {loop.time() - started >= 0.05}, later {later.done()}")
        with pytest.raises(TimeoutError):
            await later
        outcomes.append(f"later after {loop.time() - started >= 0.3}")
        outcomes.append(f"patient waiting {not any(request.done() for request in patient)}")
        acceptance.message_acknowledged()
        await asyncio.gather(*patient)
        return outcomes

    assert asyncio.run(scenario()) == [
        "sooner after True, later False",
        "later after True",
        "patient waiting True",
    ]
