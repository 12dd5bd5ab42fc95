// Smoke test: pub/sub with the official Dapr JS SDK (@dapr/dapr 3.18.0, from
// npm). A DaprServer app (HTTP, listening on APP_PORT) subscribes with
// server.pubsub.subscribe and server.pubsub.subscribeBulk; DaprClients over
// HTTP and over gRPC publish through the app's own mecha runtime (app id
// "js-pubsub", embedded `pubsub` component), and the events must arrive
// once each. Started by tests/sdk/python/harness.py, which sets APP_PORT,
// DAPR_HTTP_PORT and DAPR_GRPC_PORT, and starts the runtime once the app
// listens (server.start() waits for it).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { CommunicationProtocolEnum, DaprClient, DaprServer } from "@dapr/dapr";

const host = "127.0.0.1";
const pubsub = "pubsub";
const token = randomUUID();
const received = { orders: [], bulk: [] };

const server = new DaprServer({
  serverHost: host,
  serverPort: process.env.APP_PORT,
  clientOptions: { daprHost: host, daprPort: process.env.DAPR_HTTP_PORT },
});
await server.pubsub.subscribe(pubsub, "js-orders", async (data, headers) => {
  received.orders.push({ data, headers });
});
await server.pubsub.subscribeBulk(pubsub, "js-bulk", async (data) => {
  received.bulk.push(data);
}, { maxMessagesCount: 10, maxAwaitDurationMs: 100 });
await server.start();

// Waits until `list` holds `count` items, then a little more to see that
// nothing arrives twice (an event answered with success is not redelivered).
async function arrived(list, count, label) {
  const deadline = Date.now() + 15000;
  while (list.length < count && Date.now() < deadline) {
    await sleep(50);
  }
  await sleep(600);
  assert.equal(list.length, count, `${label}: ${JSON.stringify(list)}`);
}

const clients = {
  http: new DaprClient({ daprHost: host, daprPort: process.env.DAPR_HTTP_PORT }),
  grpc: new DaprClient({
    daprHost: host,
    daprPort: process.env.DAPR_GRPC_PORT,
    communicationProtocol: CommunicationProtocolEnum.GRPC,
  }),
};

for (const [protocol, client] of Object.entries(clients)) {
  const result = await client.pubsub.publish(pubsub, "js-orders", { token, protocol, qty: 3 });
  assert.equal(result.error, undefined, `${protocol}: ${result.error}`);
}
await arrived(received.orders, 2, "js-orders");
const orders = received.orders.map(({ data }) => data).sort((a, b) => a.protocol.localeCompare(b.protocol));
assert.deepEqual(orders, [
  { token, protocol: "grpc", qty: 3 },
  { token, protocol: "http", qty: 3 },
]);
for (const { headers } of received.orders) {
  assert.match(headers["content-type"], /^application\/cloudevents\+json/);
}
console.log("ok - @dapr/dapr pubsub.publish over http and grpc, delivered to server.pubsub.subscribe");

for (const [protocol, client] of Object.entries(clients)) {
  const messages = [1, 2, 3].map((n) => ({ token, protocol, n }));
  const bulk = await client.pubsub.publishBulk(pubsub, "js-bulk", messages);
  assert.deepEqual(bulk.failedMessages, [], `${protocol}: ${JSON.stringify(bulk)}`);
}
await arrived(received.bulk, 6, "js-bulk");
const bulkEvents = received.bulk.map(({ protocol, n }) => `${protocol} ${n}`).sort();
assert.deepEqual(bulkEvents, ["grpc 1", "grpc 2", "grpc 3", "http 1", "http 2", "http 3"]);
assert.ok(received.bulk.every((data) => data.token === token), JSON.stringify(received.bulk));
console.log("ok - @dapr/dapr pubsub.publishBulk over http and grpc, delivered to server.pubsub.subscribeBulk");

// An unknown pubsub is an error the SDK reports.
for (const [protocol, client] of Object.entries(clients)) {
  // The HTTP client answers { error }; the gRPC one throws it.
  const result = await client.pubsub.publish("no-such-pubsub", "js-orders", { token }).catch((thrown) => thrown);
  assert.match(String(result.error), /pubsub no-such-pubsub is not found/, protocol);
}
console.log("ok - unknown pubsub rejected");

await clients.http.stop();
await clients.grpc.stop();
await server.stop();
