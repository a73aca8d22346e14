// Follow one job: its logs as they are written (getupdate with a log offset, so each poll
// carries only the new lines), then the finished job with its result.
import { api, errorText, ok, type Schemas } from "../api/client";

export type Job = Schemas["QueuedJob"] | Schemas["CompletedJob"];

/** Poll interval while the job is queued or running (ms). */
const POLL_MS = 250;

export class JobWatch {
  job = $state<Job | null>(null);
  logs = $state("");
  running = $state(false);
  completed = $state(false);
  error = $state("");
  #offset = 0;
  #stopped = false;

  constructor(
    public workspace: string,
    public id: string,
  ) {
    void this.#run();
  }

  stop(): void {
    this.#stopped = true;
  }

  get completedJob(): Schemas["CompletedJob"] | null {
    return this.job?.type === "CompletedJob" ? this.job : null;
  }

  async #run(): Promise<void> {
    const path = { workspace: this.workspace, id: this.id };
    try {
      this.job = await ok(api.GET("/api/w/{workspace}/jobs_u/get/{id}", { params: { path } }));
      this.logs = this.job.logs ?? "";
      this.#offset = this.logs.length;
      this.completed = this.job.type === "CompletedJob";
      while (!this.#stopped && !this.completed) {
        const update = await ok(
          api.GET("/api/w/{workspace}/jobs_u/getupdate/{id}", {
            params: { path, query: { log_offset: this.#offset } },
          }),
        );
        if (update.new_logs) this.logs += update.new_logs;
        if (update.log_offset != null) this.#offset = update.log_offset;
        this.running = !!update.running;
        if (update.completed) break;
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
      if (this.#stopped) return;
      this.job = await ok(api.GET("/api/w/{workspace}/jobs_u/get/{id}", { params: { path } }));
      this.logs = this.job.logs ?? this.logs;
      this.completed = this.job.type === "CompletedJob";
      this.running = false;
    } catch (e) {
      this.error = errorText(e);
    }
  }
}
