// Smoke test: the official Dapr JS SDK (@dapr/dapr 3.18.0, from npm) invokes
// an HTTP app through a mecha runtime, over HTTP and over gRPC. Started by
// tests/sdk/python/harness.py, which sets DAPR_HTTP_PORT and DAPR_GRPC_PORT
// for the caller's runtime; the target app id is "js-http-app".
import assert from "node:assert/strict";
import { CommunicationProtocolEnum, DaprClient, HttpMethod } from "@dapr/dapr";

const host = "127.0.0.1";
const clients = {
  http: new DaprClient({ daprHost: host, daprPort: process.env.DAPR_HTTP_PORT }),
  grpc: new DaprClient({
    daprHost: host,
    daprPort: process.env.DAPR_GRPC_PORT,
    communicationProtocol: CommunicationProtocolEnum.GRPC,
  }),
};

for (const [protocol, client] of Object.entries(clients)) {
  const answer = await client.invoker.invoke("js-http-app", "orders/7", HttpMethod.POST, { qty: 2 });
  assert.equal(answer.method, "POST", protocol);
  assert.equal(answer.path, "/orders/7", protocol);
  assert.deepEqual(JSON.parse(answer.body), { qty: 2 }, protocol);
  assert.equal(answer.caller, "js-caller", protocol);

  const got = await client.invoker.invoke("js-http-app", "items", HttpMethod.GET);
  assert.equal(got.method, "GET", protocol);
  console.log(`ok - @dapr/dapr invoker.invoke over ${protocol}`);
}

// An unknown app id is an error, not a hang.
await assert.rejects(clients.http.invoker.invoke("js-nobody", "x", HttpMethod.GET));
console.log("ok - unknown app id rejected");

// An app id daprd cannot use fails the invocation with daprd's answer:
// 500 ERR_DIRECT_INVOKE, as the app sees it through the SDK.
await assert.rejects(clients.http.invoker.invoke("a.b.c", "x", HttpMethod.GET), (err) => {
  const text = String(err?.message ?? err);
  assert.match(text, /500/, text);
  assert.match(text, /ERR_DIRECT_INVOKE/, text);
  return true;
});
console.log("ok - invalid app id answered with daprd's 500 ERR_DIRECT_INVOKE");
await clients.http.stop();
await clients.grpc.stop();
