// Follow one job: its logs as they are written (getupdate with a log offset, so each poll
// carries only the new text), then the finished job with its result. Also the small helpers
// the job pages share (a job's status, durations, times, the re-run link's arguments).
import { api, ApiError, errorText, ok, type Schemas } from "../api/client";

export type Job = Schemas["QueuedJob"] | Schemas["CompletedJob"];
export type JobStatus = "queued" | "running" | Schemas["JobStatus"];

/** Poll interval while the job is queued or running (ms): fast at first, then calmer. */
const POLL_MS = 250;
const POLL_SLOW_MS = 1000;
const SLOW_AFTER_MS = 15_000;
/** Failed polls in a row before giving up (a restarting server, a dropped connection). */
const MAX_FAILURES = 8;

export class JobWatch {
  job = $state<Job | null>(null);
  logs = $state("");
  running = $state(false);
  completed = $state(false);
  error = $state("");
  #offset = 0;
  #stopped = false;
  #wake: (() => void) | null = null;

  constructor(
    public workspace: string,
    public id: string,
  ) {
    void this.#run();
  }

  stop(): void {
    this.#stopped = true;
    this.#wake?.();
  }

  /** Poll now rather than at the next tick (after a cancel, say). */
  poke(): void {
    this.#wake?.();
  }

  get completedJob(): Schemas["CompletedJob"] | null {
    return this.job?.type === "CompletedJob" ? this.job : null;
  }

  get status(): JobStatus | null {
    if (!this.job) return null;
    if (this.job.type === "CompletedJob") return this.job.status;
    return this.running ? "running" : "queued";
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }

  async #fetchJob(noLogs = false): Promise<Job> {
    const path = { workspace: this.workspace, id: this.id };
    const query = noLogs ? { no_logs: true } : {};
    return await ok(api.GET("/api/w/{workspace}/jobs_u/get/{id}", { params: { path, query } }));
  }

  async #run(): Promise<void> {
    const path = { workspace: this.workspace, id: this.id };
    const began = Date.now();
    let failures = 0;
    try {
      const first = await this.#fetchJob();
      if (this.#stopped) return;
      this.job = first;
      this.logs = first.logs ?? "";
      this.#offset = this.logs.length;
      this.completed = first.type === "CompletedJob";
      this.running = first.type === "QueuedJob" && first.running;
    } catch (e) {
      this.error = errorText(e);
      return;
    }
    while (!this.#stopped && !this.completed) {
      try {
        const update = await ok(
          api.GET("/api/w/{workspace}/jobs_u/getupdate/{id}", {
            params: { path, query: { log_offset: this.#offset } },
          }),
        );
        if (this.#stopped) return;
        failures = 0;
        this.error = "";
        if (update.new_logs) this.logs += update.new_logs;
        if (update.log_offset != null) this.#offset = update.log_offset;
        if (update.completed) break;
        if (update.running && !this.running) {
          // It just started: fetch it again for its start time and worker.
          this.job = { ...(await this.#fetchJob(true)), logs: null };
        }
        this.running = update.running;
      } catch (e) {
        // A job that disappeared or became invisible will not come back; anything else
        // (a restart, a dropped connection) is retried a few times.
        const fatal = e instanceof ApiError && (e.status === 404 || e.status === 403);
        this.error = errorText(e);
        if (fatal || ++failures >= MAX_FAILURES) return;
      }
      await this.#sleep(Date.now() - began > SLOW_AFTER_MS ? POLL_SLOW_MS : POLL_MS);
    }
    if (this.#stopped) return;
    try {
      // The finished job (result, status, duration); its logs are the ones already read
      // unless the server has more (the last lines written just before the end).
      const done = await this.#fetchJob();
      if (this.#stopped) return;
      this.job = done;
      if (done.logs != null && done.logs.length >= this.logs.length) this.logs = done.logs;
      this.completed = done.type === "CompletedJob";
      this.running = false;
      this.error = "";
    } catch (e) {
      this.error = errorText(e);
    }
  }
}

/** The status of a job as listed (a queued row knows whether it runs). */
export function jobStatus(job: Job): JobStatus {
  if (job.type === "CompletedJob") return job.status;
  return job.running ? "running" : "queued";
}

/** Milliseconds since `iso` (never negative: the browser's clock may lag the server's). */
export function elapsedSince(iso: string | null | undefined, now: number): number | null {
  if (!iso) return null;
  return Math.max(0, now - Date.parse(iso));
}

/** A job's duration: the recorded one when finished, the time so far when running. */
export function jobDuration(job: Job, now: number): number | null {
  if (job.type === "CompletedJob") return job.duration_ms;
  return job.running ? elapsedSince(job.started_at, now) : null;
}

/** `850 ms`, `2.4 s`, `3 min 05 s`, `2 h 07 min`. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms == null) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(Math.floor(s % 60)).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

/** A local date and time (to the second). */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { hour12: false });
}

/** `12 s ago`, `5 min ago`, `3 h ago`, `2 d ago`. */
export function formatAgo(iso: string | null | undefined, now: number): string {
  if (!iso) return "";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** Arguments for `?args=` (base64url of the UTF-8 JSON, what the run form reads). */
export function encodeArgs(args: Record<string, unknown>): string {
  const bytes = new TextEncoder().encode(JSON.stringify(args));
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A clock for live durations: `now.value` updates every `ms` while someone reads it. */
export class Clock {
  value = $state(Date.now());
  #timer: ReturnType<typeof setInterval>;
  constructor(ms = 500) {
    this.#timer = setInterval(() => (this.value = Date.now()), ms);
  }
  stop(): void {
    clearInterval(this.#timer);
  }
}
