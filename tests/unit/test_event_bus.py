"""The event bus on its own: delivery after the publisher returns, isolation of slow and
failing subscribers, bounded queues, streams."""

from __future__ import annotations

import asyncio
import logging

import pytest

from camera_service.core.events import CameraChanged, EventBus


class Ping:
    def __init__(self, n: int) -> None:
        self.n = n


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_delivery_happens_after_the_publisher_returns():
    bus = EventBus()
    seen: list[int] = []
    bus.subscribe(Ping, lambda e: seen.append(e.n))
    bus.publish(Ping(1))
    assert seen == []  # a response written in the publishing callback goes out first
    await settle()
    assert seen == [1]


async def test_only_subscribers_of_the_exact_type_get_an_event():
    bus = EventBus()
    pings: list[object] = []
    cameras: list[object] = []
    bus.subscribe(Ping, pings.append)
    bus.subscribe(CameraChanged, cameras.append)
    bus.publish(Ping(1))
    bus.publish(object())  # nobody subscribed: nothing happens, nothing raises
    await settle()
    assert len(pings) == 1 and cameras == []


async def test_slow_and_failing_subscribers_do_not_hold_up_the_others(caplog):
    bus = EventBus()
    fast: list[int] = []
    failing_calls: list[int] = []
    slow_started = asyncio.Event()
    release = asyncio.Event()

    async def slow(event: Ping) -> None:
        slow_started.set()
        await release.wait()

    def failing(event: Ping) -> None:
        failing_calls.append(event.n)
        raise RuntimeError(f"subscriber bug on {event.n}")

    async def failing_async(event: Ping) -> None:
        raise ValueError("async subscriber bug")

    bus.subscribe(Ping, slow)
    bus.subscribe(Ping, failing)
    bus.subscribe(Ping, failing_async)
    bus.subscribe(Ping, lambda e: fast.append(e.n))
    with caplog.at_level(logging.ERROR, logger="camera_service.core.events"):
        for n in range(5):
            bus.publish(Ping(n))
        await asyncio.wait_for(slow_started.wait(), 1)
        await settle()
    assert fast == [0, 1, 2, 3, 4]
    assert failing_calls == [0, 1, 2, 3, 4]  # a failure does not end the subscription
    assert (
        sum("subscriber bug" in r.getMessage() or r.exc_info is not None for r in caplog.records)
        >= 10
    )
    release.set()


async def test_a_subscriber_that_falls_behind_loses_its_oldest_events(caplog):
    bus = EventBus(max_pending=3)
    got: list[int] = []
    gate = asyncio.Event()

    async def blocked(event: Ping) -> None:
        await gate.wait()
        got.append(event.n)

    subscription = bus.subscribe(Ping, blocked)
    with caplog.at_level(logging.WARNING, logger="camera_service.core.events"):
        for n in range(10):
            bus.publish(Ping(n))
    assert subscription.dropped == 7
    assert any("dropped 1 oldest" in r.getMessage() for r in caplog.records)
    gate.set()
    for _ in range(20):
        await asyncio.sleep(0)
    assert got == [7, 8, 9]


async def test_closed_subscription_gets_nothing_more():
    bus = EventBus()
    seen: list[int] = []
    subscription = bus.subscribe(Ping, lambda e: seen.append(e.n))
    bus.publish(Ping(1))
    subscription.close()
    bus.publish(Ping(2))
    await settle()
    assert seen == [] and bus.subscriber_count(Ping) == 0


async def test_stream_yields_in_order_and_ends_after_what_was_published():
    bus = EventBus()
    stream = bus.stream(Ping)
    for n in range(3):
        bus.publish(Ping(n))
    stream.end()
    assert [e.n async for e in stream] == [0, 1, 2]


async def test_stream_as_context_manager_unsubscribes():
    bus = EventBus()
    async with bus.stream(Ping) as stream:
        bus.publish(Ping(5))
        assert (await asyncio.wait_for(anext(stream), 1)).n == 5
    assert bus.subscriber_count(Ping) == 0


@pytest.mark.parametrize("count", [1000])
async def test_many_events_keep_their_order(count):
    bus = EventBus()
    seen: list[int] = []
    bus.subscribe(Ping, lambda e: seen.append(e.n))
    for n in range(count):
        bus.publish(Ping(n))
    await settle()
    assert seen == list(range(count))
