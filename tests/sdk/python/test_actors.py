"""Actors through the official Dapr Python SDK (dapr==1.19.0): an actor
written with `dapr.actor` and hosted by `dapr.ext.fastapi`'s DaprActor
(apps/actor_app.py, behind its own runtime), called with ActorProxy through
another runtime: method calls, state, a timer and a reminder with data,
and their cancellation. The app's callbacks are in the file ACTOR_RECORDS."""

import asyncio
import json
import os
import time
import unittest

from dapr.actor import ActorId, ActorInterface, ActorProxy, actormethod


class CounterInterface(ActorInterface):
    @actormethod(name="Increment")
    async def increment(self, by: int) -> int: ...

    @actormethod(name="Get")
    async def get(self) -> int: ...

    @actormethod(name="StartTimer")
    async def start_timer(self, label: str) -> None: ...

    @actormethod(name="StopTimer")
    async def stop_timer(self) -> None: ...

    @actormethod(name="StartReminder")
    async def start_reminder(self, label: str) -> None: ...

    @actormethod(name="StopReminder")
    async def stop_reminder(self) -> None: ...


def records():
    with open(os.environ["ACTOR_RECORDS"]) as f:
        return [json.loads(line) for line in f if line.strip()]


async def eventually(what, done, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if done():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; the app got {records()}")


def proxy(actor_id):
    return ActorProxy.create("Counter", ActorId(actor_id), CounterInterface)


class ActorsThroughTheSdk(unittest.IsolatedAsyncioTestCase):
    async def test_methods_and_state(self):
        counter = proxy("sdk-1")
        self.assertEqual(await counter.Increment(2), 2)
        self.assertEqual(await counter.Increment(3), 5)
        self.assertEqual(await counter.Get(), 5)
        # Another actor has its own state.
        self.assertEqual(await proxy("sdk-2").Get(), 0)
        # Calls to one actor take turns: none is lost.
        await asyncio.gather(*(proxy("sdk-3").Increment(1) for _ in range(20)))
        self.assertEqual(await proxy("sdk-3").Get(), 20)

    async def test_a_timer_with_data_and_its_end(self):
        counter = proxy("sdk-timer")
        await counter.StartTimer("t1")
        await eventually("three ticks", lambda: sum(
            r["kind"] == "timer" and r["actor"] == "sdk-timer" for r in records()) >= 3)
        ticks = [r for r in records() if r["kind"] == "timer" and r["actor"] == "sdk-timer"]
        self.assertEqual(ticks[0]["state"], {"label": "t1"})
        await counter.StopTimer()
        stopped = len([r for r in records() if r["kind"] == "timer" and r["actor"] == "sdk-timer"])
        await asyncio.sleep(1)
        after = len([r for r in records() if r["kind"] == "timer" and r["actor"] == "sdk-timer"])
        self.assertLessEqual(after - stopped, 1, "at most a tick in flight after the timer stopped")

    async def test_a_reminder_with_data_and_its_end(self):
        counter = proxy("sdk-reminder")
        await counter.StartReminder("r1")
        await eventually("two reminders", lambda: sum(
            r["kind"] == "reminder" and r["actor"] == "sdk-reminder" for r in records()) >= 2)
        fired = [r for r in records() if r["kind"] == "reminder" and r["actor"] == "sdk-reminder"]
        self.assertEqual((fired[0]["name"], fired[0]["state"]), ("wake", "r1"))
        await counter.StopReminder()
        stopped = len([r for r in records() if r["kind"] == "reminder" and r["actor"] == "sdk-reminder"])
        await asyncio.sleep(1.5)
        after = len([r for r in records() if r["kind"] == "reminder" and r["actor"] == "sdk-reminder"])
        self.assertLessEqual(after - stopped, 1, "at most a fire in flight after the reminder stopped")


if __name__ == "__main__":
    unittest.main()
