// Smoke test: jobs fired to an app served by the official Dapr JS SDK
// (@dapr/dapr 3.18.0, from npm). The SDK has no jobs client in 3.18.0, so
// the job is scheduled with a plain HTTP call (`/v1.0-alpha1/jobs/{name}`,
// as its unreleased client would); its gRPC DaprServer registers only
// `AppCallbackAlpha/OnJobEventAlpha1` (a no-op), so the fire reaches it
// through the runtime's fallback from `OnJobEvent`, as daprd's does, and
// is taken: the runtime's counts in the metadata API show one fire and no
// failure, and the one-shot job is gone. Started by
// tests/sdk/python/harness.py, which sets APP_PORT, DAPR_HTTP_PORT and
// DAPR_GRPC_PORT, and starts the runtime (`--app-protocol grpc`) once the
// app listens.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { CommunicationProtocolEnum, DaprServer } from "@dapr/dapr";

const host = "127.0.0.1";
const server = new DaprServer({
  serverHost: host,
  serverPort: process.env.APP_PORT,
  communicationProtocol: CommunicationProtocolEnum.GRPC,
  clientOptions: {
    daprHost: host,
    daprPort: process.env.DAPR_GRPC_PORT,
    communicationProtocol: CommunicationProtocolEnum.GRPC,
  },
});
await server.start();

const dapr = `http://${host}:${process.env.DAPR_HTTP_PORT}`;
const scheduled = await fetch(`${dapr}/v1.0-alpha1/jobs/js-job`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ dueTime: "0s", data: { from: "js" } }),
});
assert.equal(scheduled.status, 204, await scheduled.text());

async function extended() {
  const metadata = await (await fetch(`${dapr}/v1.0/metadata`)).json();
  return metadata.extended;
}
const deadline = Date.now() + 15000;
while ((await extended())["scheduler.jobsFired"] !== "1" && Date.now() < deadline) {
  await sleep(50);
}
const counts = await extended();
assert.equal(counts["scheduler.jobsFired"], "1", JSON.stringify(counts));
assert.equal(counts["scheduler.jobsFailed"], "0", JSON.stringify(counts));
const gone = await fetch(`${dapr}/v1.0-alpha1/jobs/js-job`);
assert.equal(gone.status, 500, "a one-shot job is deleted once it fired");
assert.equal((await gone.json()).errorCode, "DAPR_SCHEDULER_GET_JOB");
console.log("ok - a job fired to a JS SDK gRPC app (OnJobEventAlpha1)");
// The gRPC DaprServer's stop() waits on its client, which does not end
// here: the script ends itself (the harness stops the runtime).
process.exit(0);
