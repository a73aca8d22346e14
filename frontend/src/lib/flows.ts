// Flows in Windmill's OpenFlow format, as the UI reads and edits them: the module kinds,
// finding a step by id in the tree, new steps, input transforms, and how a run's
// `flow_status` (Windmill's FlowStatus) maps to what each step's box shows. The server keeps
// every field it does not know, so the editor only ever changes the fields it shows.
import type { JsonSchema } from "./schema";

export type InputTransform =
  | { type: "static"; value?: unknown }
  | { type: "javascript"; expr: string };

export type Transforms = Record<string, InputTransform>;

type Open = { [key: string]: unknown };

export type RawScript = Open & {
  type: "rawscript";
  language: string;
  content: string;
  input_transforms: Transforms;
};
export type PathScript = Open & { type: "script"; path: string; hash?: string | null; input_transforms: Transforms };
export type PathFlow = Open & { type: "flow"; path: string; input_transforms: Transforms };
export type ForLoop = Open & {
  type: "forloopflow";
  iterator: InputTransform;
  modules: FlowModule[];
  skip_failures?: boolean;
};
export type WhileLoop = Open & { type: "whileloopflow"; modules: FlowModule[]; skip_failures?: boolean };
export type Branch = Open & { summary?: string; expr?: string; modules: FlowModule[] };
export type BranchOne = Open & { type: "branchone"; branches: Branch[]; default: FlowModule[] };
export type BranchAll = Open & { type: "branchall"; branches: Branch[] };
export type Identity = Open & { type: "identity" };
/** A kind the UI does not edit (Windmill's `aiagent`, ...): shown by name, kept as it is. */
export type OtherModule = Open & { type: "other" };

export type ModuleValue =
  | RawScript
  | PathScript
  | PathFlow
  | ForLoop
  | WhileLoop
  | BranchOne
  | BranchAll
  | Identity
  | OtherModule;

export type FlowModule = Open & {
  id: string;
  summary?: string;
  value: ModuleValue;
  stop_after_if?: { expr: string; skip_if_stopped?: boolean } | null;
};

export type FlowValue = Open & {
  modules: FlowModule[];
  failure_module?: FlowModule | null;
};

export type OpenFlow = {
  summary: string;
  description: string;
  value: FlowValue;
  schema: JsonSchema;
};

export type Leaf = RawScript | PathScript | PathFlow;

export function isLeaf(value: ModuleValue): value is Leaf {
  return value.type === "rawscript" || value.type === "script" || value.type === "flow";
}

export function isLoop(value: ModuleValue): value is ForLoop | WhileLoop {
  return value.type === "forloopflow" || value.type === "whileloopflow";
}

/** A short label for a module's kind. */
export function kindLabel(value: ModuleValue): string {
  switch (value.type) {
    case "rawscript":
      return value.language;
    case "script":
      return "script";
    case "flow":
      return "flow";
    case "forloopflow":
      return "for loop";
    case "whileloopflow":
      return "while loop";
    case "branchone":
      return "branch one";
    case "branchall":
      return "branch all";
    case "identity":
      return "identity";
    default:
      // A kind the UI does not know: its own name ("other": not known at all).
      return (value as { type: string }).type === "other" ? "" : String((value as { type: string }).type);
  }
}

/** The lists of modules directly inside a module (a loop's body, each branch, the default). */
export function childLists(value: ModuleValue): FlowModule[][] {
  switch (value.type) {
    case "forloopflow":
    case "whileloopflow":
      return [value.modules];
    case "branchone":
      return [value.default, ...value.branches.map((b) => b.modules)];
    case "branchall":
      return value.branches.map((b) => b.modules);
    default:
      return [];
  }
}

/** Every module of the flow, depth first (the failure module last). */
export function allModules(flow: FlowValue): FlowModule[] {
  const out: FlowModule[] = [];
  const walk = (list: FlowModule[]): void => {
    for (const m of list) {
      out.push(m);
      for (const child of childLists(m.value)) walk(child);
    }
  };
  walk(flow.modules);
  if (flow.failure_module) out.push(flow.failure_module);
  return out;
}

/** Where the module `id` is: the list holding it and its index (null: not found or the
 * failure module, which is in no list). */
export function locate(flow: FlowValue, id: string): { list: FlowModule[]; index: number } | null {
  const search = (list: FlowModule[]): { list: FlowModule[]; index: number } | null => {
    for (let i = 0; i < list.length; i++) {
      if (list[i].id === id) return { list, index: i };
      for (const child of childLists(list[i].value)) {
        const found = search(child);
        if (found) return found;
      }
    }
    return null;
  };
  return search(flow.modules);
}

export function findModule(flow: FlowValue, id: string): FlowModule | null {
  return allModules(flow).find((m) => m.id === id) ?? null;
}

/** The ids of the steps whose results a step may read: those before it in its list and
 * before each list containing it, up to the top (Windmill's `results.<id>`). */
export function earlierIds(flow: FlowValue, id: string): string[] {
  const path = (list: FlowModule[], trail: string[]): string[] | null => {
    for (let i = 0; i < list.length; i++) {
      const before = [...trail, ...list.slice(0, i).map((m) => m.id)];
      if (list[i].id === id) return before;
      for (const child of childLists(list[i].value)) {
        const found = path(child, before);
        if (found) return found;
      }
    }
    return null;
  };
  const found = path(flow.modules, []);
  if (found) return found;
  // The failure module runs after any step.
  if (flow.failure_module?.id === id) return flow.modules.map((m) => m.id);
  return [];
}

/** Whether the step is inside a loop (it may read `flow_input.iter`). */
export function insideLoop(flow: FlowValue, id: string): boolean {
  const search = (list: FlowModule[], inLoop: boolean): boolean | null => {
    for (const m of list) {
      if (m.id === id) return inLoop;
      for (const child of childLists(m.value)) {
        const found = search(child, inLoop || isLoop(m.value));
        if (found !== null) return found;
      }
    }
    return null;
  };
  return search(flow.modules, false) ?? false;
}

/** A fresh id not used in the flow: `a`, `b`, ... `z`, `aa`, ... as Windmill's editor names. */
export function freshId(flow: FlowValue): string {
  const used = new Set(allModules(flow).map((m) => m.id));
  for (let n = 0; ; n++) {
    let id = "";
    let k = n;
    do {
      id = String.fromCharCode(97 + (k % 26)) + id;
      k = Math.floor(k / 26) - 1;
    } while (k >= 0);
    if (!used.has(id) && id !== "failure") return id;
  }
}

export type NewKind =
  | "rawscript"
  | "script"
  | "flow"
  | "forloopflow"
  | "whileloopflow"
  | "branchone"
  | "branchall";

export const NEW_KINDS: { kind: NewKind; label: string }[] = [
  { kind: "rawscript", label: "Inline script" },
  { kind: "script", label: "Saved script" },
  { kind: "flow", label: "Saved flow" },
  { kind: "forloopflow", label: "For loop" },
  { kind: "whileloopflow", label: "While loop" },
  { kind: "branchone", label: "Branch one" },
  { kind: "branchall", label: "Branch all" },
];

export function newModule(
  id: string,
  kind: NewKind,
  language: { name: string; template: string } | null,
): FlowModule {
  switch (kind) {
    case "rawscript":
      return {
        id,
        value: {
          type: "rawscript",
          language: language?.name ?? "python3",
          content: language?.template ?? "",
          input_transforms: {},
        },
      };
    case "script":
      return { id, value: { type: "script", path: "", input_transforms: {} } };
    case "flow":
      return { id, value: { type: "flow", path: "", input_transforms: {} } };
    case "forloopflow":
      return {
        id,
        value: { type: "forloopflow", iterator: { type: "javascript", expr: "[]" }, modules: [], skip_failures: false },
      };
    case "whileloopflow":
      return {
        id,
        value: { type: "whileloopflow", modules: [], skip_failures: false },
        stop_after_if: { expr: "true", skip_if_stopped: false },
      };
    case "branchone":
      return { id, value: { type: "branchone", branches: [{ summary: "", expr: "false", modules: [] }], default: [] } };
    case "branchall":
      return { id, value: { type: "branchall", branches: [{ summary: "", modules: [] }, { summary: "", modules: [] }] } };
  }
}

/** A flow as read from the server or from YAML: the parts the editor needs always present
 * (unknown module kinds keep their own `type`; the editor shows them as "other"). */
export function normalizeFlow(raw: {
  summary?: unknown;
  description?: unknown;
  value?: unknown;
  schema?: unknown;
}): OpenFlow {
  const value = (raw.value && typeof raw.value === "object" ? raw.value : {}) as FlowValue;
  if (!Array.isArray(value.modules)) value.modules = [];
  const schema = (raw.schema && typeof raw.schema === "object" ? raw.schema : {}) as JsonSchema;
  schema.type ??= "object";
  schema.properties ??= {};
  schema.required ??= [];
  return {
    summary: typeof raw.summary === "string" ? raw.summary : "",
    description: typeof raw.description === "string" ? raw.description : "",
    value,
    schema,
  };
}

// -- inputs ------------------------------------------------------------------------------

export type InputChoice = { label: string; expr: string };

/** What an input may be connected to: the flow's inputs, earlier steps' results, the loop's
 * item. */
export function inputChoices(flow: OpenFlow, id: string): InputChoice[] {
  const choices: InputChoice[] = [];
  for (const name of Object.keys(flow.schema.properties ?? {})) {
    choices.push({ label: `flow_input.${name}`, expr: `flow_input.${name}` });
  }
  if (insideLoop(flow.value, id)) {
    choices.push({ label: "flow_input.iter.value (the loop's item)", expr: "flow_input.iter.value" });
    choices.push({ label: "flow_input.iter.index", expr: "flow_input.iter.index" });
  }
  for (const earlier of earlierIds(flow.value, id)) {
    choices.push({ label: `results.${earlier}`, expr: `results.${earlier}` });
  }
  choices.push({ label: "previous_result", expr: "previous_result" });
  return choices;
}

/** The transform's value as the editor's text: a static JSON value or the expression. */
export function transformText(t: InputTransform | undefined): string {
  if (!t) return "";
  if (t.type === "javascript") return t.expr;
  if (t.value === undefined) return "";
  return typeof t.value === "string" ? t.value : JSON.stringify(t.value);
}

/** A static transform from what was typed: JSON when it reads as JSON and the field is not
 * a string, else the text. */
export function staticFrom(text: string, type: string | undefined): InputTransform {
  if (type === "string") return { type: "static", value: text };
  try {
    return { type: "static", value: JSON.parse(text) };
  } catch {
    return { type: "static", value: text };
  }
}

// -- a run --------------------------------------------------------------------------------

/** Windmill's FlowStatusModule, as served in `flow_status.modules`. */
export type StatusModule = {
  type: string;
  id: string;
  job?: string;
  count?: number;
  iterator?: { index: number; itered: unknown[] };
  flow_jobs?: string[];
  flow_jobs_success?: (boolean | null)[];
  branch_chosen?: { type: "branch" | "default"; branch?: number | null };
  branchall?: { branch: number; len: number };
  failed_retries?: string[];
  skipped?: boolean;
};

export type FlowStatus = {
  step?: number;
  modules?: StatusModule[];
  failure_module?: StatusModule;
};

/** What a step's box shows during a run. */
export type StepState = {
  status: "waiting" | "running" | "success" | "failure" | "skipped" | "suspended" | "canceled" | "queued";
  job: string | null;
  durationMs: number | null;
  /** Loops and branchall: the jobs run inside (each iteration's or branch's steps). */
  innerJobs: { id: string; status: string }[];
  module: StatusModule;
};

type JobLike = {
  id: string;
  type: string;
  status?: string;
  running?: boolean;
  duration_ms?: number | null;
  started_at?: string | null;
  created_at?: string;
  job_kind?: string;
  /** The module the job ran (Windmill's `flow_step_id`). */
  flow_step_id?: string | null;
};

function jobState(job: JobLike | undefined): string {
  if (!job) return "queued";
  if (job.type === "CompletedJob") return job.status ?? "success";
  return job.running ? "running" : "queued";
}

function jobDuration(job: JobLike | undefined, now: number): number | null {
  if (job?.type === "CompletedJob") return job.duration_ms ?? null;
  if (job?.running && job.started_at) return Math.max(0, now - Date.parse(job.started_at));
  return null;
}

/** Each step's state, by step id: the top-level steps' (and the failure module's) from the
 * flow's status and the jobs it ran (listed with `parent_job`); given the flow, the steps
 * inside a top-level loop or branch too, from the jobs naming them (`flow_step_id`): each
 * one's latest job in the loop's current (or last) iteration. A sequential container's leaf
 * jobs are the flow's own children (its `flow_jobs`, in order); a parallel one runs each
 * iteration or branch as a child flow (`flownode`): its body shows the latest one's jobs,
 * given in `nodeJobs` (by flownode job id). */
export function stepStates(
  status: FlowStatus | null | undefined,
  jobs: JobLike[],
  now: number,
  flow?: FlowValue | null,
  nodeJobs?: ReadonlyMap<string, JobLike[]>,
): Map<string, StepState> {
  const byId = new Map(jobs.map((j) => [j.id, j]));
  const out = new Map<string, StepState>();
  const modules = [...(status?.modules ?? [])];
  if (status?.failure_module) modules.push(status.failure_module);
  for (const m of modules) {
    const job = m.job ? byId.get(m.job) : undefined;
    let state: StepState["status"];
    switch (m.type) {
      case "Success":
        state = m.skipped ? "skipped" : "success";
        break;
      case "Failure":
        state = "failure";
        break;
      case "WaitingForEvents":
        state = "suspended";
        break;
      case "InProgress":
      case "WaitingForExecutor":
        state = job && job.type === "QueuedJob" && !job.running ? "queued" : "running";
        break;
      default:
        state = "waiting";
    }
    let durationMs = jobDuration(job, now);
    const inner = m.flow_jobs ?? [];
    if (inner.length) {
      // A container: the time from its first inner job's start to now or its last one's end.
      const done = inner.map((id) => byId.get(id)).filter((j): j is JobLike => !!j);
      durationMs = done.reduce((sum, j) => sum + (j.duration_ms ?? 0), 0) || durationMs;
    }
    out.set(m.id, {
      status: state,
      job: m.job ?? null,
      durationMs,
      innerJobs: inner.map((id) => ({ id, status: jobState(byId.get(id)) })),
      module: m,
    });
  }
  for (const m of flow?.modules ?? []) {
    const top = out.get(m.id);
    const inner = top?.module.flow_jobs ?? [];
    if (!top || !inner.length || !childLists(m.value).length) continue;
    const last = byId.get(inner[inner.length - 1]);
    if (last?.job_kind === "flownode") {
      // Parallel: the latest iteration's (or branch's) own jobs, in the order they were made.
      const own = [...(nodeJobs?.get(last.id) ?? [])].sort((a, b) =>
        (a.created_at ?? "").localeCompare(b.created_at ?? ""),
      );
      fillBody(m, own, 0, last.type !== "CompletedJob", now, out);
    } else {
      const ordered = inner.map((id) => byId.get(id)).filter((j): j is JobLike => !!j);
      const running = ["running", "queued", "suspended"].includes(top.status);
      fillBody(m, ordered, 0, running, now, out);
    }
  }
  return out;
}

/** The ids of the leaf steps in `list` and below, each with the index of the module of
 * `list` that holds it. */
function leafPositions(list: FlowModule[]): Map<string, number> {
  const out = new Map<string, number>();
  list.forEach((m, i) => {
    const walk = (x: FlowModule): void => {
      const lists = childLists(x.value);
      if (!lists.length) out.set(x.id, i);
      for (const l of lists) l.forEach(walk);
    };
    walk(m);
  });
  return out;
}

/** Where a loop's current (or last) iteration starts in `jobs` (from `from` on): at a job
 * of a module earlier in its body than the job before's (a retry stays in its iteration). */
function iterationStart(loop: FlowModule, jobs: JobLike[], from: number): number {
  const positions = leafPositions(childLists(loop.value)[0] ?? []);
  let start = from;
  let previous = -1;
  for (let k = from; k < jobs.length; k++) {
    const p = positions.get(jobs[k].flow_step_id ?? "");
    if (p === undefined) continue;
    if (p < previous) start = k;
    previous = p;
  }
  return start;
}

/** The states of the steps inside `container`, from its leaf jobs in order (`from` on: the
 * current iteration of the loops around it); a step not run there is "waiting" while the
 * container runs, else has no state. */
function fillBody(
  container: FlowModule,
  jobs: JobLike[],
  from: number,
  running: boolean,
  now: number,
  out: Map<string, StepState>,
): void {
  const start = isLoop(container.value) ? iterationStart(container, jobs, from) : from;
  for (const list of childLists(container.value)) {
    for (const m of list) {
      if (childLists(m.value).length) {
        fillBody(m, jobs, start, running, now, out);
        continue;
      }
      let job: JobLike | undefined;
      for (let k = jobs.length - 1; k >= start && !job; k--) if (jobs[k].flow_step_id === m.id) job = jobs[k];
      if (!job && !running) continue;
      const status = (job ? jobState(job) : "waiting") as StepState["status"];
      out.set(m.id, {
        status,
        job: job?.id ?? null,
        durationMs: jobDuration(job, now),
        innerJobs: [],
        module: { type: job ? "Leaf" : "WaitingForPriorSteps", id: m.id, job: job?.id },
      });
    }
  }
}

/** The job kinds that are flows (their page shows the graph). */
export const FLOW_KINDS = ["flow", "flowpreview", "flownode"];
