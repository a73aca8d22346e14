// The only way the UI talks to the server: a client typed by the OpenAPI document
// (src/api/schema.d.ts is generated from src/api/openapi.json by `npm run gen-client`;
// `gristmill openapi > src/api/openapi.json` refreshes the document and a test checks it is
// current). A path or field the server does not declare fails the type check.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type { paths };

/** A token given to the page itself (an embedded app page: `#token=...`); otherwise the
 * HTTP-only `token` cookie set at login authenticates every call. */
let bearer: string | null = null;

export function setBearer(token: string | null): void {
  bearer = token;
}

/** What a failed call answered: the HTTP status and the server's plain-text message. */
export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Called on a 401 (the session ended): the app sends the user to the login page. */
let onUnauthorized: (() => void) | null = null;
export function handleUnauthorized(fn: () => void): void {
  onUnauthorized = fn;
}

const auth: Middleware = {
  async onRequest({ request }) {
    if (bearer) request.headers.set("Authorization", `Bearer ${bearer}`);
    return request;
  },
};

export const api = createClient<paths>({ baseUrl: "", credentials: "same-origin" });
api.use(auth);

type Result<T> = { data?: T; error?: unknown; response: Response };

function message(error: unknown, response: Response): string {
  if (typeof error === "string" && error) return error;
  if (error && typeof error === "object") return JSON.stringify(error);
  return `${response.status} ${response.statusText}`;
}

/** The body of a successful call, or an ApiError carrying the server's message. */
export async function ok<T>(call: Promise<Result<T>>): Promise<T> {
  const { data, error, response } = await call;
  if (!response.ok) {
    if (response.status === 401 && onUnauthorized) onUnauthorized();
    throw new ApiError(response.status, message(error, response));
  }
  return data as T;
}

/** A message to show the user for any thrown value. */
export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}
