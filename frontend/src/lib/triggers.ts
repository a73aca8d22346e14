// What the trigger pages share: the runnables a trigger may start (scripts and flows), their
// argument schemas, the webhook URLs of a runnable and curl examples calling a URL.
import { api, ok } from "../api/client";
import type { JsonSchema } from "./schema";

export type RunnableKind = "script" | "flow";

/** A script or flow a trigger may start. */
export type Runnable = { kind: RunnableKind; path: string; summary: string };

/** Every script and flow of the workspace (not archived), scripts first, each by path. */
export async function loadRunnables(workspace: string): Promise<Runnable[]> {
  const [scripts, flows] = await Promise.all([
    ok(api.GET("/api/w/{workspace}/scripts/list", { params: { path: { workspace }, query: { per_page: 1000 } } })),
    ok(api.GET("/api/w/{workspace}/flows/list", { params: { path: { workspace }, query: { per_page: 1000 } } })),
  ]);
  const byPath = (a: Runnable, b: Runnable) => a.path.localeCompare(b.path);
  return [
    ...scripts.map((s): Runnable => ({ kind: "script", path: s.path, summary: s.summary ?? "" })).sort(byPath),
    ...flows.map((f): Runnable => ({ kind: "flow", path: f.path, summary: f.summary ?? "" })).sort(byPath),
  ];
}

/** A runnable as one `<select>` value (`script:u/me/x`, `flow:f/team/y`), and back. */
export function runnableKey(kind: RunnableKind, path: string): string {
  return path ? `${kind}:${path}` : "";
}

export function parseRunnableKey(key: string): { kind: RunnableKind; path: string } | null {
  const at = key.indexOf(":");
  if (at < 0) return null;
  const kind = key.slice(0, at);
  if (kind !== "script" && kind !== "flow") return null;
  return { kind, path: key.slice(at + 1) };
}

/** The argument schema of a script or flow (an empty object schema when it has none). */
export async function loadSchema(workspace: string, kind: RunnableKind, path: string): Promise<JsonSchema> {
  const found =
    kind === "flow"
      ? await ok(api.GET("/api/w/{workspace}/flows/get/{path}", { params: { path: { workspace, path } } }))
      : await ok(api.GET("/api/w/{workspace}/scripts/get/p/{path}", { params: { path: { workspace, path } } }));
  return ((found.schema as JsonSchema | null) ?? { type: "object", properties: {} }) as JsonSchema;
}

/** The page of a runnable in the UI. */
export function runnableHref(workspace: string, isFlow: boolean, path: string): string {
  return `/w/${workspace}/${isFlow ? "flows" : "scripts"}/get/${path}`;
}

/** The origin the browser reached the server at (what a curl from elsewhere would call). */
export function origin(): string {
  return window.location.origin;
}

/** A shell-quoted word (single quotes; a quote inside closes, escapes and reopens). */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** The header a curl example authenticates with: a bearer `token` (a `$TOKEN` placeholder
 * when none). */
export function bearer(token: string | null): string {
  return `Authorization: Bearer ${token ?? "$TOKEN"}`;
}

/** A curl command calling `url` with `method`, the `auth` option (a header; none when null)
 * and, unless it is a GET or DELETE, `body` as JSON. */
export function curlExample(url: string, auth: string | null, body: unknown = {}, method = "POST"): string {
  const lines = [`curl -X ${method} ${shellQuote(url)}`];
  if (auth) lines.push(`  ${auth.startsWith("-") ? auth : `-H ${shellQuote(auth)}`}`);
  if (method !== "GET" && method !== "DELETE") {
    lines.push(`  -H 'Content-Type: application/json'`, `  -d ${shellQuote(JSON.stringify(body))}`);
  }
  return lines.join(" \\\n");
}

/** The webhook URLs of a script (by path, and by `hash` when given) or a flow. */
export function webhookUrls(
  workspace: string,
  kind: RunnableKind,
  path: string,
  hash?: string | null,
): { label: string; description: string; url: string }[] {
  const base = `${origin()}/api/w/${workspace}/jobs`;
  const letter = kind === "flow" ? "f" : "p";
  const urls = [
    {
      label: "Async",
      description: "answers the new job's id at once (its result: jobs_u/completed/get_result/<id>)",
      url: `${base}/run/${letter}/${path}`,
    },
    {
      label: "Sync",
      description: "waits for the run and answers its result",
      url: `${base}/run_wait_result/${letter}/${path}`,
    },
  ];
  if (kind === "script" && hash) {
    urls.push({
      label: "By hash",
      description: "runs this exact version even after the script changes (async)",
      url: `${base}/run/h/${hash}`,
    });
  }
  return urls;
}

/** A token scope allowing to run this one script or flow and nothing else (Windmill's
 * webhook-specific token: `jobs:run:scripts:<path>` / `jobs:run:flows:<path>`). */
export function webhookScope(kind: RunnableKind, path: string): string {
  return `jobs:run:${kind === "flow" ? "flows" : "scripts"}:${path}`;
}

/** The UI page of a trigger kind (`schedule`, `http`, `postgres`), or null for kinds without
 * one (`webhook`: a run by URL). */
export function triggerPageOf(workspace: string, kind: string): string | null {
  const pages: Record<string, string> = { schedule: "schedules", http: "routes", postgres: "postgres_triggers" };
  return pages[kind] ? `/w/${workspace}/${pages[kind]}` : null;
}

/** Where a trigger is shown: its kind's page, searched for its path (null: no page). */
export function triggerHref(workspace: string, kind: string, path: string | null | undefined): string | null {
  const page = triggerPageOf(workspace, kind);
  return page && path ? `${page}?q=${encodeURIComponent(path)}` : page;
}
