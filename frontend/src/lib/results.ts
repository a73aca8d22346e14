// How to show a job's result. Windmill's rich display conventions: an object with one known
// key says how to render its value (`{"png": base64}`, `{"html": "..."}`, `{"table-col": {...}}`,
// `{"render_all": [...]}`, ...); a list of objects, a list of lists and an object of lists are
// shown as tables; `{"error": {name, message, stack}}` is a failure; anything else is JSON.

export type Table = { columns: string[]; rows: unknown[][] };

export type Rich =
  | { kind: "json"; value: unknown }
  | { kind: "text"; text: string }
  | { kind: "table"; table: Table }
  | { kind: "image"; src: string; mime: string }
  | { kind: "file"; content: string; filename: string }
  | { kind: "html"; html: string }
  | { kind: "markdown"; text: string }
  | { kind: "error"; name: string; message: string; stack: string; extra: unknown }
  | { kind: "all"; items: unknown[] }
  | { kind: "approval"; resume: string; cancel: string; approvalPage: string };

const IMAGE_TYPES: Record<string, string> = {
  png: "image/png",
  jpeg: "image/jpeg",
  jpg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
};

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** `{"png": "<base64>"}` or `{"png": {"content": "<base64>"}}`: the base64 text. */
function contentOf(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (isPlainObject(v) && typeof v.content === "string") return v.content;
  return null;
}

function dataUrl(mime: string, content: string): string {
  const trimmed = content.trim();
  if (trimmed.startsWith("data:")) return trimmed;
  return `data:${mime};base64,${trimmed.replace(/\s+/g, "")}`;
}

/** Columns: the union of the rows' keys, in order of first appearance. */
export function tableOfObjects(rows: Record<string, unknown>[], order?: string[]): Table {
  const seen = new Set<string>(order ?? []);
  const columns = [...seen];
  for (const row of rows) {
    for (const key of Object.keys(row)) {
      if (!seen.has(key)) {
        seen.add(key);
        columns.push(key);
      }
    }
  }
  return { columns, rows: rows.map((row) => columns.map((c) => row[c])) };
}

/** Rows of cells; the first row is the header when it holds only strings. */
function tableOfRows(rows: unknown[][]): Table {
  const [first, ...rest] = rows;
  if (first && first.length > 0 && first.every((c) => typeof c === "string")) {
    return { columns: first as string[], rows: rest };
  }
  const width = Math.max(0, ...rows.map((r) => r.length));
  return { columns: Array.from({ length: width }, (_, i) => String(i)), rows };
}

function tableOfColumns(cols: Record<string, unknown[]>): Table {
  const columns = Object.keys(cols);
  const height = Math.max(0, ...columns.map((c) => cols[c].length));
  const rows = Array.from({ length: height }, (_, i) => columns.map((c) => cols[c][i]));
  return { columns, rows };
}

function isListOfObjects(v: unknown): v is Record<string, unknown>[] {
  return Array.isArray(v) && v.length > 0 && v.every(isPlainObject);
}

function isListOfLists(v: unknown): v is unknown[][] {
  return Array.isArray(v) && v.length > 0 && v.every(Array.isArray);
}

function isObjectOfLists(v: unknown): v is Record<string, unknown[]> {
  if (!isPlainObject(v)) return false;
  const values = Object.values(v);
  return values.length > 0 && values.every(Array.isArray) && values.some((a) => a.length > 0);
}

/** The rendering for one key of a single-key object, or null when the key is not a known one
 * (or its value does not have the expected shape). */
function richKey(key: string, value: unknown): Rich | null {
  switch (key) {
    case "json":
      return { kind: "json", value };
    case "html":
      return typeof value === "string" ? { kind: "html", html: value } : null;
    case "markdown":
    case "md":
      return typeof value === "string" ? { kind: "markdown", text: value } : null;
    case "svg": {
      if (typeof value !== "string") return null;
      const text = value.trim();
      // SVG text is shown through an <img> (which runs no script); base64 is accepted too.
      const src = text.startsWith("<")
        ? `data:image/svg+xml;charset=utf-8,${encodeURIComponent(text)}`
        : dataUrl("image/svg+xml", text);
      return { kind: "image", src, mime: "image/svg+xml" };
    }
    case "file": {
      if (!isPlainObject(value)) return null;
      const content = contentOf(value);
      if (content == null) return null;
      const filename = typeof value.filename === "string" ? value.filename : "result.bin";
      return { kind: "file", content, filename };
    }
    case "pdf": {
      const content = contentOf(value);
      return content == null ? null : { kind: "file", content, filename: "result.pdf" };
    }
    case "table-col":
      return isObjectOfLists(value) ? { kind: "table", table: tableOfColumns(value) } : null;
    case "table-row":
      if (isListOfLists(value)) return { kind: "table", table: tableOfRows(value) };
      if (Array.isArray(value)) return { kind: "table", table: tableOfRows([value]) };
      return null;
    case "table-row-object": {
      if (!Array.isArray(value) || value.length === 0) return null;
      const [first, ...rest] = value;
      if (Array.isArray(first) && first.every((c) => typeof c === "string") && rest.every(isPlainObject)) {
        return { kind: "table", table: tableOfObjects(rest, first as string[]) };
      }
      return isListOfObjects(value) ? { kind: "table", table: tableOfObjects(value) } : null;
    }
    case "render_all":
      return Array.isArray(value) ? { kind: "all", items: value } : null;
    case "error":
      return errorOf(value);
  }
  if (key in IMAGE_TYPES) {
    const content = contentOf(value);
    if (content == null) return null;
    return { kind: "image", src: dataUrl(IMAGE_TYPES[key], content), mime: IMAGE_TYPES[key] };
  }
  return null;
}

/** `{"name", "message", "stack", ...}` (what a failed job answers under `error`). */
function errorOf(value: unknown): Rich | null {
  if (typeof value === "string") return { kind: "error", name: "Error", message: value, stack: "", extra: null };
  if (!isPlainObject(value)) return null;
  const { name, message, stack, ...extra } = value;
  if (typeof message !== "string" && typeof name !== "string") return null;
  return {
    kind: "error",
    name: typeof name === "string" ? name : "Error",
    message: typeof message === "string" ? message : JSON.stringify(message ?? ""),
    stack: typeof stack === "string" ? stack : "",
    extra: Object.keys(extra).length ? extra : null,
  };
}

export function classify(result: unknown): Rich {
  if (typeof result === "string") return { kind: "text", text: result };
  if (isPlainObject(result)) {
    const keys = Object.keys(result);
    if (keys.length === 1) {
      const rich = richKey(keys[0], result[keys[0]]);
      if (rich) return rich;
    }
    if (
      keys.length === 3 &&
      typeof result.resume === "string" &&
      typeof result.cancel === "string" &&
      typeof result.approvalPage === "string"
    ) {
      return { kind: "approval", resume: result.resume, cancel: result.cancel, approvalPage: result.approvalPage };
    }
    if (isObjectOfLists(result)) return { kind: "table", table: tableOfColumns(result) };
    return { kind: "json", value: result };
  }
  if (isListOfObjects(result)) return { kind: "table", table: tableOfObjects(result) };
  if (isListOfLists(result)) return { kind: "table", table: tableOfRows(result) };
  return { kind: "json", value: result };
}

/** A table cell's text: strings as they are, other values as compact JSON. */
export function cellText(v: unknown): string {
  if (v === undefined) return "";
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

/** Base64 (standard or url-safe) to bytes; null when it is not base64. */
export function base64Bytes(content: string): Uint8Array<ArrayBuffer> | null {
  try {
    const clean = content.replace(/^data:[^,]*,/, "").replace(/\s+/g, "").replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(clean);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  } catch {
    return null;
  }
}
