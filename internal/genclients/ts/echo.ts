// Runs demo/development/echo through the client openapi-typescript and
// openapi-fetch make from openapi.yaml: the body and the outputs are typed
// by the task's own operation, so `tsc` refuses a wrong field name.
import createClient from "openapi-fetch";
import type { paths, components } from "./schema.js";

const base = process.env.TASKGATE_URL;
const token = process.env.TASKGATE_TOKEN;
if (!base || !token) {
  throw new Error("TASKGATE_URL and TASKGATE_TOKEN must be set");
}

const client = createClient<paths>({ baseUrl: base, headers: { Authorization: `Bearer ${token}` } });

const body: components["schemas"]["EchoInput"] = { message: "hi from TypeScript" };
const { data, error, response } = await client.POST("/run-task/demo/development/echo", {
  params: { header: { Prefer: "wait=20" } },
  body,
});
if (error !== undefined || data === undefined) {
  throw new Error(`status ${response.status}: ${JSON.stringify(error)}`);
}
const phase: components["schemas"]["DemoDevelopmentEchoRun"]["phase"] = data.phase;
const message: string | undefined = data.outputs?.message;
if (response.status !== 200 || phase !== "succeeded" || message !== "hi from TypeScript") {
  throw new Error(`unexpected answer ${response.status}: ${JSON.stringify(data)}`);
}
console.log(`phase: ${phase}`);
console.log(`outputs.message: ${message}`);
