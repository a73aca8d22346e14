// Routes other branches of issue 12 add at the same time as these pages (restarting a flow
// from a step, approving a suspended step). Until the merged server's
// document is regenerated into src/api/schema.d.ts, their calls are typed here, in the
// generated client's own shape, and go through the same client (its auth, its errors). Once
// schema.d.ts has them, `Pending` adds nothing and this file can go: import `api` from
// ../api/client again.
import type { Client } from "openapi-fetch";
import { api as client, type paths } from "../api/client";

type Text201 = {
  201: { headers: { [name: string]: unknown }; content: { "text/plain": string } };
  400: { headers: { [name: string]: unknown }; content: { "text/plain": string } };
};
type Json200<T> = {
  200: { headers: { [name: string]: unknown }; content: { "application/json": T } };
  400: { headers: { [name: string]: unknown }; content: { "text/plain": string } };
};
type Args = { content: { "application/json": { [key: string]: unknown } } };
type Route<P> = {
  parameters: { query?: never; header?: never; path?: never; cookie?: never };
} & P;
type Post<PathParams, Body, Responses> = {
  post: {
    parameters: { query?: never; header?: never; path: PathParams; cookie?: never };
    requestBody?: Body;
    responses: Responses;
  };
};
type Get<PathParams, Query, Responses> = {
  get: {
    parameters: { query?: Query; header?: never; path: PathParams; cookie?: never };
    requestBody?: never;
    responses: Responses;
  };
};

/** What the approval page reads (`jobs_u/get_flow/...`, /work/briefs/contract-suspend.md). */
export type SuspendedFlow = {
  job: { [key: string]: unknown };
  approvers: { approver: string; resume_id: number }[];
  step_id?: string;
  waiting?: boolean;
  required_events?: number;
  resume_form?: { schema?: { [key: string]: unknown } } | null;
  hide_cancel?: boolean;
  user_auth_required?: boolean;
  suspend_until?: string | null;
  approvals?: { resume_id: number; approver: string; approved: boolean; created_at: string }[];
};

type Signed = { workspace: string; id: string; resume_id: number; signature: string };
type SignedPost = {
  post: {
    parameters: { query?: { approver?: string }; header?: never; path: Signed; cookie?: never };
    requestBody?: { content: { "application/json": unknown } };
    responses: Text201;
  };
};

type Pending = {
  "/api/w/{workspace}/jobs/restart/f/{id}/from/{step_id}": Route<
    Post<{ workspace: string; id: string; step_id: string }, Args, Text201>>;
  "/api/w/{workspace}/jobs/restart/f/{id}/from/{step_id}/{branch_or_iteration_n}": Route<
    Post<{ workspace: string; id: string; step_id: string; branch_or_iteration_n: number }, Args, Text201>>;
  "/api/w/{workspace}/jobs_u/get_flow/{id}/{resume_id}/{signature}": Route<
    Get<Signed, { approver?: string }, Json200<SuspendedFlow>>>;
  "/api/w/{workspace}/jobs_u/resume/{id}/{resume_id}/{signature}": Route<SignedPost>;
  "/api/w/{workspace}/jobs_u/cancel/{id}/{resume_id}/{signature}": Route<SignedPost>;
  "/api/w/{workspace}/jobs/flow/resume/{id}": Route<Post<{ workspace: string; id: string }, Args, Text201>>;
};

export const api = client as unknown as Client<paths & Pending>;
