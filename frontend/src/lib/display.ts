// Small formatting helpers for the workspace pages.

/** A timestamp from the API as a local date and time ("" when absent). */
export function when(ts: string | null | undefined): string {
  if (!ts) return "";
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? ts : d.toLocaleString();
}

/** What a secret shows instead of its value, everywhere. */
export const MASK = "••••••";

/** Text cut to `n` characters with an ellipsis. */
export function clip(text: string, n = 80): string {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

/** A value from an `<input type="datetime-local">` as an RFC 3339 timestamp (UTC), or null. */
export function localInputToIso(value: string): string | null {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** A member's role as one word. */
export function roleOf(user: { is_admin: boolean; operator: boolean }): Role {
  return user.is_admin ? "admin" : user.operator ? "operator" : "developer";
}

export type Role = "admin" | "developer" | "operator";

/** Windmill's two flags for a role (what `users/update`, `add_user` and `invite_user` take). */
export function roleFlags(role: Role): { is_admin: boolean; operator: boolean } {
  return { is_admin: role === "admin", operator: role === "operator" };
}

/** The `extra_perms` of an item as sorted [owner, "write" | "read"] pairs. */
export function perms(extra: Record<string, unknown> | null | undefined): [string, string][] {
  return Object.entries(extra ?? {})
    .map(([k, v]): [string, string] => [k, v === true ? "write" : "read"])
    .sort((a, b) => a[0].localeCompare(b[0]));
}
