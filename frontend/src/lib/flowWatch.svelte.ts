// Follow a flow job: its status (Windmill's `flow_status`) and the jobs it ran (its steps:
// `jobs/list?parent_job=`), polled until the flow finishes. A flow's own logs are few (its
// steps have theirs), so the flow is read without logs and each step's logs are read by the
// step's own view (JobOutput) when opened. A parallel loop or branch runs each iteration as
// a child flow (`flownode`): the latest one's jobs are read too (`nodeSteps`), once more
// after it ends.
import { api, ApiError, errorText, ok } from "../api/client";
import type { FlowStatus } from "./flows";
import type { Job } from "./jobs.svelte";

const POLL_MS = 400;
const POLL_SLOW_MS = 1500;
const SLOW_AFTER_MS = 20_000;
const MAX_FAILURES = 8;

export class FlowWatch {
  job = $state<Job | null>(null);
  steps = $state<Job[]>([]);
  /** The jobs of each top-level parallel module's latest child flow, by its job id. */
  nodeSteps = $state<ReadonlyMap<string, Job[]>>(new Map());
  /** Child flows read after they ended (their jobs are final). */
  #nodesDone = new Set<string>();
  error = $state("");
  #stopped = false;
  #wake: (() => void) | null = null;

  constructor(
    public workspace: string,
    public id: string,
  ) {
    void this.#run();
  }

  get completed(): boolean {
    return this.job?.type === "CompletedJob";
  }

  get status(): FlowStatus | null {
    return (this.job?.flow_status ?? null) as FlowStatus | null;
  }

  stop(): void {
    this.#stopped = true;
    this.#wake?.();
  }

  /** Read now (after an approval, a cancel). */
  poke(): void {
    this.#wake?.();
  }

  async #read(): Promise<void> {
    const path = { workspace: this.workspace, id: this.id };
    const [job, steps] = await Promise.all([
      ok(api.GET("/api/w/{workspace}/jobs_u/get/{id}", { params: { path, query: { no_logs: true } } })),
      ok(
        api.GET("/api/w/{workspace}/jobs/list", {
          params: { path: { workspace: this.workspace }, query: { parent_job: this.id, per_page: 1000 } },
        }),
      ),
    ]);
    const nodes = await this.#readNodes(job, steps);
    if (this.#stopped) return;
    this.job = job;
    this.steps = steps;
    this.nodeSteps = nodes;
  }

  async #readNodes(job: Job, steps: Job[]): Promise<ReadonlyMap<string, Job[]>> {
    const byId = new Map(steps.map((j) => [j.id, j]));
    const modules = (job.flow_status as FlowStatus | null | undefined)?.modules ?? [];
    const latest = modules
      .map((m) => byId.get(m.flow_jobs?.[m.flow_jobs.length - 1] ?? ""))
      .filter((j): j is Job => j?.job_kind === "flownode");
    const out = new Map<string, Job[]>();
    await Promise.all(
      latest.map(async (node) => {
        const known = this.nodeSteps.get(node.id);
        if (known && this.#nodesDone.has(node.id)) {
          out.set(node.id, known);
          return;
        }
        const children = await ok(
          api.GET("/api/w/{workspace}/jobs/list", {
            params: { path: { workspace: this.workspace }, query: { parent_job: node.id, per_page: 1000 } },
          }),
        );
        if (node.type === "CompletedJob") this.#nodesDone.add(node.id);
        out.set(node.id, children);
      }),
    );
    return out;
  }

  async #run(): Promise<void> {
    const began = Date.now();
    let failures = 0;
    while (!this.#stopped) {
      try {
        await this.#read();
        failures = 0;
        this.error = "";
        // (the status is read once more after the flow ends: its last step's job too)
        if (this.completed) return;
      } catch (e) {
        const fatal = e instanceof ApiError && (e.status === 404 || e.status === 403);
        this.error = errorText(e);
        if (fatal || ++failures >= MAX_FAILURES) return;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Date.now() - began > SLOW_AFTER_MS ? POLL_SLOW_MS : POLL_MS);
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.#wake = done;
      });
    }
  }
}
