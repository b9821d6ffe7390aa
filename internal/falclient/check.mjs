// Drives a taskgate queue with fal's own JS client, unmodified, through
// its proxy option, as a fal user would: examples/fal-queue started by
// run.sh (make fal-client). Prints a JSON summary; exits 1 on any mismatch.
//
//	FAL_PROXY_URL=http://127.0.0.1:8080/gen/fal FAL_KEY=token FAL_SUBJECT=alice node check.mjs
import { ApiError, ValidationError, createFalClient, fal } from "@fal-ai/client";

const proxy = process.env.FAL_PROXY_URL;
const key = process.env.FAL_KEY;
const subject = process.env.FAL_SUBJECT;
if (!proxy || !key || !subject) {
  console.error("check.mjs: set FAL_PROXY_URL, FAL_KEY and FAL_SUBJECT");
  process.exit(2);
}

// The line of fal's docs for a server-side proxy, with the token as the key.
fal.config({ credentials: key, proxyUrl: { url: proxy, when: "always" } });

const echo = "my-team/gen/echo";
const slow = "my-team/gen/slow";
// Where fal's absolute URLs must point: the proxy's host, fal's layout.
const requestBase = (id) => `${proxy}/my-team/gen/requests/${id}`;

const results = [];
function expect(cond, what, got) {
  if (!cond) {
    throw new Error(`${what}; got ${JSON.stringify(got)}`);
  }
}

async function check(name, fn) {
  const t0 = Date.now();
  try {
    const detail = await fn();
    results.push({ name, ok: true, ms: Date.now() - t0, ...(detail ?? {}) });
  } catch (err) {
    results.push({ name, ok: false, ms: Date.now() - t0, error: String(err?.stack ?? err) });
  }
}

// rejection runs fn and returns what it threw, failing if it did not.
async function rejection(fn) {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected an error, got none");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let submitted;
await check("queue.submit", async () => {
  submitted = await fal.queue.submit(echo, { input: { prompt: "a cat" }, priority: "low", startTimeout: 30 });
  const id = submitted.request_id;
  expect(typeof id === "string" && id !== "", "a request_id", submitted);
  expect(submitted.status === "IN_QUEUE", "status IN_QUEUE", submitted);
  expect(typeof submitted.queue_position === "number", "a queue_position", submitted);
  expect(submitted.status_url === `${requestBase(id)}/status`, "an absolute status_url", submitted);
  expect(submitted.response_url === requestBase(id), "an absolute response_url", submitted);
  expect(submitted.cancel_url === `${requestBase(id)}/cancel`, "an absolute cancel_url", submitted);
  return { request_id: id };
});

await check("queue.streamStatus", async () => {
  const stream = await fal.queue.streamStatus(echo, { requestId: submitted.request_id, logs: true });
  const seen = [];
  for await (const s of stream) {
    seen.push(s.status);
  }
  const last = await stream.done();
  expect(last?.status === "COMPLETED", "the stream ends COMPLETED", last);
  expect(stream.requestId === submitted.request_id, "x-fal-request-id on the stream", stream.requestId);
  return { statuses: seen };
});

await check("queue.status", async () => {
  const s = await fal.queue.status(echo, { requestId: submitted.request_id, logs: true });
  expect(s.status === "COMPLETED", "COMPLETED", s);
  expect(s.response_url === requestBase(submitted.request_id), "an absolute response_url", s);
  expect(s.logs?.some((l) => l.message === "echoing"), "the handler's log line", s.logs);
  return { logs: s.logs.length };
});

await check("queue.result", async () => {
  const r = await fal.queue.result(echo, { requestId: submitted.request_id });
  expect(r.requestId === submitted.request_id, "the request id from x-fal-request-id", r.requestId);
  expect(r.data?.prompt === "a cat", "the app's answer", r.data);
  expect(r.data?.subject === subject, "the app saw the caller of Authorization: Key", r.data);
});

// A request that takes a while, so that the stream carries its changes.
await check("queue.subscribeToStatus (streaming)", async () => {
  const { request_id: requestId } = await fal.queue.submit(slow, { input: { seconds: 0.5 } });
  const updates = [];
  const done = await fal.queue.subscribeToStatus(slow, {
    requestId, mode: "streaming", logs: true, onQueueUpdate: (u) => updates.push(u.status),
  });
  expect(done?.status === "COMPLETED" && !done.error, "COMPLETED without error", done);
  expect(updates.includes("IN_PROGRESS") && updates.at(-1) === "COMPLETED",
    "onQueueUpdate saw IN_PROGRESS, then COMPLETED", updates);
  const r = await fal.queue.result(slow, { requestId });
  expect(r.data?.waited === 0.5, "the app's answer", r.data);
  return { updates: [...new Set(updates)] };
});

for (const mode of ["polling", "streaming"]) {
  await check(`subscribe (${mode})`, async () => {
    const updates = [];
    let enqueued;
    const r = await fal.subscribe(echo, {
      input: { prompt: `subscribed ${mode}` }, mode, pollInterval: 100, logs: true,
      onEnqueue: (id) => { enqueued = id; },
      onQueueUpdate: (u) => updates.push(u.status),
    });
    expect(r.requestId === enqueued, "the enqueued request's result", { requestId: r.requestId, enqueued });
    expect(r.data?.prompt === `subscribed ${mode}`, "the app's answer", r.data);
    expect(updates.at(-1) === "COMPLETED", "onQueueUpdate saw COMPLETED", updates);
    return { updates };
  });
}

await check("queue.cancel (slow request)", async () => {
  const { request_id: requestId } = await fal.queue.submit(slow, { input: { seconds: 60 } });
  let s;
  for (let i = 0; i < 100; i++) {
    s = await fal.queue.status(slow, { requestId });
    if (s.status === "IN_PROGRESS") break;
    await sleep(100);
  }
  expect(s.status === "IN_PROGRESS", "the slow request started", s);
  await fal.queue.cancel(slow, { requestId });
  const done = await fal.queue.subscribeToStatus(slow, { requestId, mode: "polling", pollInterval: 100 });
  expect(done.status === "COMPLETED" && done.error_type === "CANCELLED", "COMPLETED as CANCELLED", done);
  const err = await rejection(() => fal.queue.result(slow, { requestId }));
  expect(err instanceof ApiError && err.status === 409, "ApiError 409", { name: err?.name, status: err?.status });
  expect(err.body?.code === "CANCELLED", "the JSON body parsed", err.body);
  const again = await rejection(() => fal.queue.cancel(slow, { requestId }));
  expect(again instanceof ApiError && again.status === 400 && again.body?.code === "ALREADY_COMPLETED",
    "ApiError 400 ALREADY_COMPLETED", { status: again?.status, body: again?.body });
});

await check("ValidationError from the app (422)", async () => {
  const err = await rejection(() => fal.subscribe(echo, { input: { wrong: 1 }, pollInterval: 100 }));
  expect(err instanceof ValidationError && err.status === 422, "ValidationError 422", { name: err?.name, status: err?.status });
  const fields = err.getFieldErrors("prompt");
  expect(fields.length === 1 && fields[0].msg === "Field required", "FastAPI's field error, parsed", err.body);
  expect(err.requestId !== "", "the request id", err.requestId);
});

await check("ValidationError from the queue (422)", async () => {
  const err = await rejection(() => fal.queue.submit(echo, { input: { prompt: "x" }, priority: "urgent" }));
  expect(err instanceof ValidationError && err.status === 422, "ValidationError 422", { name: err?.name, status: err?.status });
  expect(err.body?.status === 422 && err.fieldErrors.length === 1, "the JSON body parsed", err.body);
});

// The refusal comes from the App's auth, before the queue's routes; it
// negotiates its type as huma's errors do, so fal's client, which asked
// for application/json, reads the problem body too.
await check("ApiError for a wrong key (401)", async () => {
  const other = createFalClient({ credentials: "not-a-token", proxyUrl: { url: proxy, when: "always" } });
  const err = await rejection(() => other.queue.status(echo, { requestId: submitted.request_id }));
  expect(err instanceof ApiError && err.status === 401, "ApiError 401", { name: err?.name, status: err?.status });
  expect(err.body?.status === 401 && err.body?.title === "Unauthorized", "the JSON body parsed", err.body);
});

const failed = results.filter((r) => !r.ok);
console.log(JSON.stringify({ client: "@fal-ai/client", passed: results.length - failed.length, failed: failed.length, results }, null, 2));
process.exit(failed.length === 0 ? 0 : 1);
