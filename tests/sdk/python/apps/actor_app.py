"""An actor app as a user would write it with the official SDK: `dapr.actor`
for the actor, `dapr.ext.fastapi`'s DaprActor to host it. Its timer and
reminder callbacks are appended to <records> as JSON lines.
Usage: actor_app.py <port> <records>"""

import json
import os
import sys
from contextlib import asynccontextmanager
from datetime import timedelta

import uvicorn
from dapr.actor import Actor, ActorInterface, Remindable, actormethod
from dapr.actor.runtime.config import ActorRuntimeConfig
from dapr.actor.runtime.runtime import ActorRuntime
from dapr.ext.fastapi import DaprActor
from fastapi import FastAPI

records = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT)


def record(**fields):
    os.write(records, (json.dumps(fields) + "\n").encode())


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


class Counter(Actor, CounterInterface, Remindable):
    async def increment(self, by: int) -> int:
        found, value = await self._state_manager.try_get_state("count")
        value = (value if found else 0) + by
        await self._state_manager.set_state("count", value)
        await self._state_manager.save_state()
        return value

    async def get(self) -> int:
        found, value = await self._state_manager.try_get_state("count")
        return value if found else 0

    async def start_timer(self, label: str) -> None:
        await self.register_timer("tick", self.on_tick, {"label": label},
                                  timedelta(seconds=0), timedelta(milliseconds=200))

    async def on_tick(self, state) -> None:
        record(kind="timer", actor=self.id.id, state=state)

    async def stop_timer(self) -> None:
        await self.unregister_timer("tick")

    async def start_reminder(self, label: str) -> None:
        await self.register_reminder("wake", label.encode(), timedelta(seconds=0),
                                     timedelta(milliseconds=300))

    async def receive_reminder(self, name, state, due_time, period, ttl=None) -> None:
        record(kind="reminder", actor=self.id.id, name=name, state=state.decode())

    async def stop_reminder(self) -> None:
        await self.unregister_reminder("wake")


ActorRuntime.set_actor_config(ActorRuntimeConfig(actor_idle_timeout=timedelta(minutes=5),
                                                  actor_scan_interval=timedelta(seconds=10)))
@asynccontextmanager
async def lifespan(_app):
    await actor.register_actor(Counter)
    yield


app = FastAPI(lifespan=lifespan)
actor = DaprActor(app)


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
