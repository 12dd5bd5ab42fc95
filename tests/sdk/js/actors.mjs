// Smoke test: an actor hosted by the official Dapr JS SDK (@dapr/dapr
// 3.18.0, from npm) in an HTTP DaprServer, called through its runtime with
// ActorProxyBuilder: method calls, state, a timer and a reminder with data,
// and their unregistration. Started by tests/sdk/python/harness.py, which
// sets APP_PORT, DAPR_HTTP_PORT and DAPR_GRPC_PORT, and starts the runtime
// once the app listens.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import {
  AbstractActor,
  ActorId,
  ActorProxyBuilder,
  CommunicationProtocolEnum,
  DaprClient,
  DaprServer,
  Temporal,
} from "@dapr/dapr";

const host = "127.0.0.1";
const fired = [];

class CounterActor extends AbstractActor {
  async increment(by) {
    const [found, count] = await this.getStateManager().tryGetState("count");
    const next = (found ? count : 0) + by;
    await this.getStateManager().setState("count", next);
    return next;
  }

  async get() {
    const [found, count] = await this.getStateManager().tryGetState("count");
    return found ? count : 0;
  }

  async startTimer(label) {
    await this.registerActorTimer("tick", "onTick", Temporal.Duration.from({ seconds: 0 }),
      Temporal.Duration.from({ milliseconds: 200 }), undefined, label);
  }

  async onTick(state) {
    fired.push({ kind: "timer", id: this.getActorId().getId(), state });
  }

  async stopTimer() {
    await this.unregisterActorTimer("tick");
  }

  async startReminder(label) {
    await this.registerActorReminder("wake", Temporal.Duration.from({ seconds: 0 }),
      Temporal.Duration.from({ milliseconds: 300 }), undefined, label);
  }

  async receiveReminder(data) {
    fired.push({ kind: "reminder", id: this.getActorId().getId(), data });
  }

  async stopReminder() {
    await this.unregisterActorReminder("wake");
  }
}

const clientOptions = {
  daprHost: host,
  daprPort: process.env.DAPR_HTTP_PORT,
  communicationProtocol: CommunicationProtocolEnum.HTTP,
};
const server = new DaprServer({ serverHost: host, serverPort: process.env.APP_PORT, clientOptions });
await server.actor.init();
await server.actor.registerActor(CounterActor);
await server.start();

const client = new DaprClient(clientOptions);
const builder = new ActorProxyBuilder(CounterActor, client);
const counter = builder.build(new ActorId("js-1"));

async function eventually(what, done, timeout = 20000) {
  const deadline = Date.now() + timeout;
  while (!done()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}: ${JSON.stringify(fired)}`);
    await sleep(50);
  }
}

// The runtime joins placement once it has read /dapr/config: the first
// call waits for it.
assert.equal(await counter.increment(2), 2);
assert.equal(await counter.increment(3), 5);
assert.equal(await counter.get(), 5);
assert.equal(await builder.build(new ActorId("js-2")).get(), 0);
await Promise.all(Array.from({ length: 10 }, () => builder.build(new ActorId("js-3")).increment(1)));
assert.equal(await builder.build(new ActorId("js-3")).get(), 10);
console.log("ok - actor methods and state through ActorProxyBuilder");

const ticks = () => fired.filter((f) => f.kind === "timer" && f.id === "js-1");
await counter.startTimer("t1");
await eventually("three ticks", () => ticks().length >= 3);
// The SDK reads a timer's data back as a string (object data would come
// back as "[object Object]", with daprd too).
assert.equal(ticks()[0].state, "t1");
await counter.stopTimer();
const stoppedTicks = ticks().length;
await sleep(1000);
assert.ok(ticks().length - stoppedTicks <= 1, "the timer stopped");
console.log("ok - a timer with data, and its end");

const wakes = () => fired.filter((f) => f.kind === "reminder" && f.id === "js-1");
await counter.startReminder("r1");
await eventually("two reminders", () => wakes().length >= 2);
assert.equal(wakes()[0].data, "r1");
await counter.stopReminder();
const stoppedWakes = wakes().length;
await sleep(1500);
assert.ok(wakes().length - stoppedWakes <= 1, "the reminder stopped");
console.log("ok - a reminder with data, and its end");
process.exit(0);
