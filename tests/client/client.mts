// A small TypeScript client of Switchboard's API typed by its OpenAPI document: the contract check.
//
// `.ci/check-client` generates `schema.d.ts` from the document a running server serves at
// `GET /api/v1/openapi.json` (with the pinned openapi-typescript), type-checks this file against it
// (`tsc`, strict), then runs it against that server. So:
//  - a field this client reads or sends that the document renames, removes or retypes fails `tsc`;
//  - an answer that differs from what the client expects (status code, ids) fails the run.
// Whether every answer matches its documented schema in full is the API fuzzer's job
// (`.ci/fuzz-api`).
//
// What it does: creates a lead of the `demo` business (`POST /api/v1/leads`), lists the lead's
// runs (`GET /api/v1/runs?lead_id=…`), reads the run (`GET /api/v1/runs/{id}`) until it has
// finished, and checks two error answers (401 without a key, 404 for an unknown run).
//
// Environment: SWITCHBOARD_API_URL (default http://127.0.0.1:8080) and SWITCHBOARD_API_KEY (a key,
// sent as `Authorization: Bearer <key>`; an operator key or a key of the `demo` business).
// Uses only Node's own `fetch` (Node 20+); exits non-zero with a message on the first failed check.

// Type-only: erased when compiled, so nothing is loaded at run time. `switchboard-openapi` is
// mapped to the generated `schema.d.ts` by the tsconfig (`paths`).
import type { paths } from "switchboard-openapi";

// ---- The types, taken from the operations (paths and methods), not from schema names ----------

type CreateLead = paths["/api/v1/leads"]["post"];
/** The body of `POST /api/v1/leads`. */
type NewLead = CreateLead["requestBody"]["content"]["application/json"];
/** `201` of `POST /api/v1/leads`: the lead and the run it started. */
type CreatedLead = CreateLead["responses"]["201"]["content"]["application/json"];

type ListRuns = paths["/api/v1/runs"]["get"];
/** The query parameters of `GET /api/v1/runs`. */
type RunsQuery = NonNullable<ListRuns["parameters"]["query"]>;
/** `200` of `GET /api/v1/runs`: a page of runs, newest first. */
type RunPage = ListRuns["responses"]["200"]["content"]["application/json"];
/** `401` of `GET /api/v1/runs`: the one error shape. */
type Unauthorized = ListRuns["responses"]["401"]["content"]["application/json"];

type GetRun = paths["/api/v1/runs/{id}"]["get"];
/** The `{id}` of `GET /api/v1/runs/{id}`. */
type RunId = GetRun["parameters"]["path"]["id"];
/** `200` of `GET /api/v1/runs/{id}`: the run with every step attempt. */
type RunDetail = GetRun["responses"]["200"]["content"]["application/json"];
/** `404` of `GET /api/v1/runs/{id}`. */
type RunNotFound = GetRun["responses"]["404"]["content"]["application/json"];

// ---- Settings -----------------------------------------------------------------------------------

const BASE_URL = (process.env["SWITCHBOARD_API_URL"] ?? "http://127.0.0.1:8080").replace(
    /\/+$/,
    "",
);
const KEY = process.env["SWITCHBOARD_API_KEY"] ?? "";
/** How long one request may take. */
const REQUEST_TIMEOUT_MS = 10_000;
/** How long a demo run may take to finish (it takes about a second on the simulator). */
const RUN_DEADLINE_MS = 60_000;
/** The statuses after which a run changes no more. */
const FINISHED = ["succeeded", "failed", "cancelled"];

// ---- Helpers ------------------------------------------------------------------------------------

/** A failed check: its message is what the run prints. */
class CheckFailed extends Error {}

function check(condition: boolean, message: string): asserts condition {
    if (!condition) {
        throw new CheckFailed(message);
    }
}

/** One request; `body` is sent as JSON. Without `key`, no `Authorization` header is sent. */
async function send(
    method: "GET" | "POST",
    path: string,
    options: { body?: NewLead; key?: string } = {},
): Promise<Response> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (options.key !== undefined) {
        headers["authorization"] = `Bearer ${options.key}`;
    }
    const init: RequestInit = { method, headers, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) };
    if (options.body !== undefined) {
        headers["content-type"] = "application/json";
        init.body = JSON.stringify(options.body);
    }
    return fetch(`${BASE_URL}${path}`, init);
}

/**
 * Checks an answer's status code and content type and returns its JSON body as `T`, the type the
 * OpenAPI document gives for that status (the caller names it from `paths`).
 *
 * This is where an answer meets its type: `JSON.parse` returns an untyped value, which is given the
 * documented type here and nowhere else (no casts). `tsc` checks what the client does with the
 * answer against the document; this checks the status and content type, and `main` the values.
 */
async function json<T>(answer: Response, status: number, what: string): Promise<T> {
    const text = await answer.text();
    check(
        answer.status === status,
        `${what}: expected ${status}, got ${answer.status}: ${text.slice(0, 500)}`,
    );
    const contentType = answer.headers.get("content-type") ?? "";
    check(
        contentType.startsWith("application/json"),
        `${what}: expected application/json, got "${contentType}"`,
    );
    const body: T = JSON.parse(text);
    return body;
}

/** A query string from typed query parameters (absent ones left out). */
function queryString(query: RunsQuery): string {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
        if (value !== undefined) {
            params.set(name, String(value));
        }
    }
    return params.toString();
}

/**
 * Calls `probe` until it returns a value or `deadlineMs` passes (then fails, saying what it last
 * saw). Polls every 100 ms, so a fast server is not made to wait.
 */
async function waitFor<T>(
    what: string,
    deadlineMs: number,
    probe: () => Promise<{ done: T } | { seen: string }>,
): Promise<T> {
    const deadline = Date.now() + deadlineMs;
    for (;;) {
        const result = await probe();
        if ("done" in result) {
            return result.done;
        }
        check(Date.now() < deadline, `${what}: not within ${deadlineMs / 1000} s (${result.seen})`);
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
}

function ok(message: string): void {
    console.log(`ok  ${message}`);
}

// ---- The checks ---------------------------------------------------------------------------------

async function main(): Promise<void> {
    check(KEY !== "", "SWITCHBOARD_API_KEY is not set (sent as Authorization: Bearer <key>)");

    // Without a key: 401 with the one error shape.
    const unauthorized = await json<Unauthorized>(
        await send("GET", "/api/v1/runs"),
        401,
        "GET /api/v1/runs without a key",
    );
    check(unauthorized.error.code === "unauthorized", `401 with code "${unauthorized.error.code}"`);
    ok(`GET /api/v1/runs without a key → 401 ${unauthorized.error.code}`);

    // Create a lead. A fictional number (555-0100 to 555-0199) is called at any hour, so the run
    // does not wait for the legal calling window; the simulator is told the call goes well.
    const lead: NewLead = {
        business: "demo",
        name: "Grace Hopper (client check)",
        phone: `+1415555${String(100 + Math.floor(Math.random() * 100)).padStart(4, "0")}`,
        source: "client-check",
        sim: { outcome: "interested" },
    };
    const created = await json<CreatedLead>(
        await send("POST", "/api/v1/leads", { body: lead, key: KEY }),
        201,
        "POST /api/v1/leads",
    );
    const leadId: string = created.lead.id;
    const runId: RunId = created.run.id;
    check(leadId !== "" && runId !== "", `empty ids: lead "${leadId}", run "${runId}"`);
    check(created.lead.business === "demo", `the lead's business is "${created.lead.business}"`);
    check(created.lead.phone === lead.phone, `the lead's phone is ${created.lead.phone}`);
    check(created.run.status === "queued", `a new run is "${created.run.status}", not queued`);
    ok(`POST /api/v1/leads → 201: lead ${leadId}, run ${runId} (${created.run.status})`);

    // List the lead's runs: its one run, with who it is for.
    const query: RunsQuery = { lead_id: leadId, limit: 10 };
    const page = await json<RunPage>(
        await send("GET", `/api/v1/runs?${queryString(query)}`, { key: KEY }),
        200,
        "GET /api/v1/runs?lead_id=…",
    );
    const listed = page.runs[0];
    check(listed !== undefined && page.runs.length === 1, `the lead has ${page.runs.length} runs`);
    check(listed.id === runId, `the listed run is ${listed.id}, created ${runId}`);
    check(listed.lead_id === leadId, `the listed run's lead is ${listed.lead_id}`);
    check(listed.lead?.name === lead.name, `the listed run's lead is named "${listed.lead?.name}"`);
    check(page.next_cursor === null, `one run, yet a next page: ${page.next_cursor}`);
    ok(`GET /api/v1/runs?lead_id=… → 200: run ${listed.id} (${listed.status}) of ${listed.lead?.name}`);

    // Read the run until it has finished; it must have succeeded, every step in order from intake.
    const path = `/api/v1/runs/${encodeURIComponent(runId)}`;
    const run = await waitFor<RunDetail>(`run ${runId} to finish`, RUN_DEADLINE_MS, async () => {
        const answer = await send("GET", path, { key: KEY });
        const read = await json<RunDetail>(answer, 200, `GET ${path}`);
        return FINISHED.includes(read.status)
            ? { done: read }
            : { seen: `${read.status} at ${read.current_step ?? "no step"}` };
    });
    check(run.id === runId, `read run ${run.id}, asked for ${runId}`);
    check(run.lead_id === leadId, `the run's lead is ${run.lead_id}, created ${leadId}`);
    check(run.business === "demo", `the run's business is "${run.business}"`);
    const ended = `${run.status} at ${run.current_step ?? "no step"} (${run.error ?? "no error"})`;
    check(run.status === "succeeded", `the run ended ${ended}`);
    const first = run.steps[0];
    check(first?.name === "intake", `the first step is ${first?.name ?? "missing"}`);
    const unfinished = run.steps
        .filter((step) => step.status !== "succeeded" || step.finished_at === null)
        .map((step) => `${step.name} ${step.status}`);
    check(unfinished.length === 0, `steps not succeeded: ${unfinished.join(", ")}`);
    check(run.script !== null && run.script !== undefined, "the run has no pinned script");
    ok(
        `GET ${path} → 200: ${run.status}, outcome ${run.outcome ?? "none"}, ` +
            `${run.steps.length} steps (${run.steps.map((step) => step.name).join(" → ")}), ` +
            `script v${run.script.version}`,
    );

    // The list shows the finished run too.
    const after = await json<RunPage>(
        await send("GET", `/api/v1/runs?${queryString(query)}`, { key: KEY }),
        200,
        "GET /api/v1/runs?lead_id=… (after)",
    );
    const relisted = after.runs[0];
    check(relisted?.status === run.status, `listed as ${relisted?.status}, read as ${run.status}`);
    ok(`GET /api/v1/runs?lead_id=… → 200: now ${relisted.status}`);

    // An unknown run: 404 with the one error shape.
    const unknown = "/api/v1/runs/00000000-0000-7000-8000-000000000000";
    const notFound = await json<RunNotFound>(
        await send("GET", unknown, { key: KEY }),
        404,
        `GET ${unknown}`,
    );
    check(notFound.error.code === "not_found", `404 with code "${notFound.error.code}"`);
    ok(`GET ${unknown} → 404 ${notFound.error.code}`);
}

try {
    await main();
    console.log("the client's checks passed");
} catch (error) {
    // A failed check says what failed; anything else (the server unreachable, say) with its cause.
    const message =
        error instanceof CheckFailed
            ? error.message
            : error instanceof Error && error.cause !== undefined
              ? `${String(error)} (${String(error.cause)})`
              : String(error);
    console.error(`client check failed: ${message}`);
    process.exitCode = 1;
}
