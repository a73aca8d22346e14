// JSON schemas as Gristmill and Windmill write them for a script's parameters: an object
// with `properties`, `required` and `order`, each property a JSON schema with Windmill's
// extensions (`format: "resource-<type>"`, `contentEncoding: "base64"`, `password`, ...).
// The pure half of the generated forms (components/SchemaForm.svelte): which input a
// property gets, its default, client-side validation, and the conversions between what an
// input holds and the JSON value sent.
export type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  order?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  default?: unknown;
  description?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  contentEncoding?: string;
  password?: boolean;
  [key: string]: unknown;
};

/** The input a property is edited with. */
export type FieldKind =
  | "string"
  | "text" // multi-line string (sql, yaml)
  | "password"
  | "email"
  | "enum"
  | "integer"
  | "number"
  | "boolean"
  | "date-time"
  | "date"
  | "bytes"
  | "resource" // "$res:<path>" of a resource of `resourceType(prop)`
  | "object" // nested fields
  | "oneof" // one of several object shapes, told apart by `label`
  | "array" // a list of typed items
  | "multiselect" // an array of enum strings
  | "json"; // any other value, as JSON text

/** `"$res:<path>"`: an argument standing for a resource (Windmill's convention). */
export const RESOURCE_PREFIX = "$res:";
const REFERENCE_PREFIXES = ["$res:", "$var:"];

export function isReference(value: unknown): value is string {
  return typeof value === "string" && REFERENCE_PREFIXES.some((p) => value.startsWith(p));
}

/** The type named by a property (`["string", "null"]` counts as `string`). */
export function typeOf(prop: JsonSchema): string | undefined {
  const t = prop.type;
  if (Array.isArray(t)) return t.find((x) => x !== "null");
  return t;
}

/** The resource type of a resource-typed property or array item, else null. */
export function resourceType(prop: JsonSchema): string | null {
  if (typeof prop.format === "string" && prop.format.startsWith("resource-")) {
    return prop.format.slice("resource-".length);
  }
  if (prop.type === "resource" && typeof prop.resourceType === "string") return prop.resourceType;
  return null;
}

export function isSecret(prop: JsonSchema): boolean {
  return prop.password === true || prop.format === "password";
}

function hasProperties(prop: JsonSchema): boolean {
  return !!prop.properties && Object.keys(prop.properties).length > 0;
}

/** The variants of a one-of property (objects with a `title`). */
export function variants(prop: JsonSchema): JsonSchema[] {
  return Array.isArray(prop.oneOf) ? (prop.oneOf as JsonSchema[]) : [];
}

export function fieldKind(prop: JsonSchema): FieldKind {
  if (resourceType(prop)) return "resource";
  const type = typeOf(prop);
  if (Array.isArray(prop.enum) && prop.enum.length > 0 && (type === "string" || !type)) {
    return "enum";
  }
  switch (type) {
    case "string":
      if (prop.contentEncoding === "base64") return "bytes";
      if (prop.format === "date-time") return "date-time";
      if (prop.format === "date") return "date";
      if (isSecret(prop)) return "password";
      if (prop.format === "email") return "email";
      if (prop.format === "sql" || prop.format === "yaml") return "text";
      return "string";
    case "integer":
      return "integer";
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "object":
      if (variants(prop).length > 0) return "oneof";
      return hasProperties(prop) ? "object" : "json";
    case "array": {
      const items = prop.items ?? {};
      if (Array.isArray(items.enum) && items.enum.length > 0) return "multiselect";
      return itemsAreTyped(items) ? "array" : "json";
    }
    default:
      return "json";
  }
}

/** Items edited one by one in a list (others: the whole array as JSON). */
function itemsAreTyped(items: JsonSchema): boolean {
  const kind = fieldKind(items);
  return kind !== "json" && kind !== "array" && kind !== "multiselect";
}

/** A short name for the type, shown beside the field (`integer`, `string[]`, `postgresql`). */
export function typeLabel(prop: JsonSchema): string {
  const res = resourceType(prop);
  if (res) return `resource: ${res}`;
  if (typeof prop.originalType === "string" && prop.originalType !== "string") {
    return prop.originalType;
  }
  const type = typeOf(prop);
  if (type === "array") {
    const items = prop.items ?? {};
    return `${resourceType(items) ?? typeOf(items) ?? "any"}[]`;
  }
  if (type === "string" && prop.format) return prop.format;
  return type ?? "any";
}

/** The names of a schema's properties, in `order` first. */
export function fieldNames(schema: JsonSchema): string[] {
  const props = Object.keys(schema.properties ?? {});
  const order = (schema.order ?? []).filter((n) => props.includes(n));
  return [...order, ...props.filter((n) => !order.includes(n))];
}

export function isRequired(schema: JsonSchema, name: string): boolean {
  return (schema.required ?? []).includes(name);
}

function clone<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}

/** The initial value of a property: its default, else what an untouched input means. */
export function defaultFor(prop: JsonSchema, required: boolean): unknown {
  if (prop.default !== undefined && prop.default !== null) return clone(prop.default);
  if (!required) return undefined;
  switch (fieldKind(prop)) {
    case "boolean":
      return false;
    case "object":
      return defaults(prop);
    case "oneof": {
      const first = variants(prop)[0];
      return first ? { ...defaults(first), label: variantLabel(first, 0) } : undefined;
    }
    case "array":
    case "multiselect":
      return [];
    default:
      return undefined;
  }
}

/** The default arguments of a schema (properties with no default are left out). */
export function defaults(schema: JsonSchema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of fieldNames(schema)) {
    const value = defaultFor(schema.properties![name], isRequired(schema, name));
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** `value` with the defaults of the properties it lacks. */
export function withDefaults(
  schema: JsonSchema,
  value: Record<string, unknown>,
): Record<string, unknown> {
  const out = { ...value };
  for (const [name, def] of Object.entries(defaults(schema))) {
    if (!(name in out) || out[name] === undefined) out[name] = def;
  }
  return out;
}

/** The label of a one-of variant: its `title`, else its `label` property's enum or default. */
export function variantLabel(variant: JsonSchema, index: number): string {
  if (typeof variant.title === "string") return variant.title;
  const label = variant.properties?.label;
  if (label && Array.isArray(label.enum) && typeof label.enum[0] === "string") return label.enum[0];
  if (label && typeof label.default === "string") return label.default;
  return `Option ${index + 1}`;
}

/** The arguments to send: unset ones left out (so the script's default applies), and names
 * the schema does not know dropped unless it takes any (`additionalProperties: true`). */
export function argsForRun(
  schema: JsonSchema,
  value: Record<string, unknown>,
): Record<string, unknown> {
  const known = new Set(Object.keys(schema.properties ?? {}));
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(value)) {
    if (v === undefined) continue;
    if (!known.has(name) && schema.additionalProperties !== true) continue;
    out[name] = v;
  }
  return out;
}

// -- conversions ---------------------------------------------------------------------------

/** A number input's text as a number: undefined when empty, NaN when not a number. */
export function parseNumber(text: string): number | undefined {
  const t = text.trim();
  if (t === "") return undefined;
  return Number(t);
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

/** An ISO date-time as a `datetime-local` input shows it (local time), "" if unreadable. */
export function isoToLocalInput(iso: unknown): string {
  if (typeof iso !== "string" || !iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const base =
    `${pad(d.getFullYear(), 4)}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}` +
    `T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return d.getSeconds() ? `${base}:${pad(d.getSeconds())}` : base;
}

/** A `datetime-local` input's value (local time) as an ISO 8601 string in UTC. */
export function localInputToIso(text: string): string | undefined {
  if (!text) return undefined;
  const d = new Date(text);
  if (Number.isNaN(d.getTime())) return undefined;
  return d.toISOString().replace(/\.000Z$/, "Z");
}

/** A file's bytes as base64. */
export async function fileToBase64(file: Blob): Promise<string> {
  const buffer = new Uint8Array(await file.arrayBuffer());
  let binary = "";
  const chunk = 0x8000;
  for (let i = 0; i < buffer.length; i += chunk) {
    binary += String.fromCharCode(...buffer.subarray(i, i + chunk));
  }
  return btoa(binary);
}

/** How many bytes a base64 string holds. */
export function base64Size(value: string): number {
  const padding = value.endsWith("==") ? 2 : value.endsWith("=") ? 1 : 0;
  return Math.max(0, Math.floor((value.length * 3) / 4) - padding);
}

/** JSON text → value, or the parse error's message. Empty text is `undefined`. */
export function parseJson(text: string): { value?: unknown; error?: string } {
  if (text.trim() === "") return { value: undefined };
  try {
    return { value: JSON.parse(text) };
  } catch (e) {
    return { error: `invalid JSON: ${e instanceof Error ? e.message : String(e)}` };
  }
}

export function toJsonText(value: unknown): string {
  return value === undefined ? "" : JSON.stringify(value, null, 2);
}

// -- validation ----------------------------------------------------------------------------

/** Messages by field path (`count`, `options.port`, `tags[2]`). */
export type Errors = Record<string, string>;

const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/i;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function isEmpty(value: unknown): boolean {
  return value === undefined || value === null;
}

function numberBound(prop: JsonSchema, key: "minimum" | "maximum"): number | undefined {
  const v = prop[key] ?? prop[key === "minimum" ? "min" : "max"];
  return typeof v === "number" ? v : undefined;
}

export function minOf(prop: JsonSchema): number | undefined {
  return numberBound(prop, "minimum");
}

export function maxOf(prop: JsonSchema): number | undefined {
  return numberBound(prop, "maximum");
}

/** The message for one value against its property, or null when it is fine; nested
 * objects and arrays add their own entries to `errors` under `path`. */
export function checkValue(
  prop: JsonSchema,
  value: unknown,
  required: boolean,
  path: string,
  errors: Errors,
): void {
  const set = (message: string) => {
    errors[path] = message;
  };
  if (isEmpty(value) || (value === "" && required)) {
    if (required && !prop.nullable) set("required");
    return;
  }
  if (isReference(value)) return; // resolved by the worker
  const type = typeOf(prop);
  const kind = fieldKind(prop);
  if (kind === "resource") {
    if (typeOf(prop) === "object" && value !== null && typeof value === "object") return;
    return set(`pick a resource of type ${resourceType(prop)}`);
  }
  switch (type) {
    case "integer":
    case "number": {
      if (typeof value !== "number" || !Number.isFinite(value)) return set("must be a number");
      if (type === "integer" && !Number.isInteger(value)) return set("must be an integer");
      const min = minOf(prop);
      const max = maxOf(prop);
      if (min !== undefined && value < min) return set(`must be at least ${min}`);
      if (max !== undefined && value > max) return set(`must be at most ${max}`);
      break;
    }
    case "boolean":
      if (typeof value !== "boolean") return set("must be true or false");
      break;
    case "string": {
      if (typeof value !== "string") return set("must be a string");
      if (prop.format === "date-time" && !ISO_DATE_TIME.test(value)) {
        return set("must be a date and time (ISO 8601)");
      }
      if (prop.format === "date" && !ISO_DATE.test(value)) return set("must be a date (YYYY-MM-DD)");
      if (prop.contentEncoding === "base64" && !BASE64.test(value)) return set("must be base64");
      if (typeof prop.minLength === "number" && value.length < prop.minLength) {
        return set(`must have at least ${prop.minLength} characters`);
      }
      if (typeof prop.maxLength === "number" && value.length > prop.maxLength) {
        return set(`must have at most ${prop.maxLength} characters`);
      }
      if (typeof prop.pattern === "string" && prop.pattern) {
        let re: RegExp | null = null;
        try {
          re = new RegExp(prop.pattern, "u");
        } catch {
          re = null; // a pattern JavaScript cannot read: the server decides
        }
        if (re && !re.test(value)) {
          return set(
            typeof prop.customErrorMessage === "string" && prop.customErrorMessage
              ? prop.customErrorMessage
              : `must match ${prop.pattern}`,
          );
        }
      }
      break;
    }
    case "array": {
      if (!Array.isArray(value)) return set("must be a list (JSON array)");
      if (typeof prop.minItems === "number" && value.length < prop.minItems) {
        return set(`needs at least ${prop.minItems} items`);
      }
      if (typeof prop.maxItems === "number" && value.length > prop.maxItems) {
        return set(`takes at most ${prop.maxItems} items`);
      }
      const items = prop.items;
      if (items && typeOf(items)) {
        value.forEach((item, i) => checkValue(items, item, true, `${path}[${i}]`, errors));
      }
      break;
    }
    case "object": {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        return set("must be an object (JSON {…})");
      }
      const obj = value as Record<string, unknown>;
      let shape: JsonSchema = prop;
      if (kind === "oneof") {
        const all = variants(prop);
        const found = all.find((v, i) => variantLabel(v, i) === obj.label);
        if (!found) return set(`choose one of: ${all.map(variantLabel).join(", ")}`);
        shape = found;
      }
      for (const name of fieldNames(shape)) {
        if (name === "label" && kind === "oneof") continue;
        checkValue(shape.properties![name], obj[name], isRequired(shape, name), `${path}.${name}`, errors);
      }
      break;
    }
  }
  if (Array.isArray(prop.enum) && prop.enum.length > 0 && !prop.enum.includes(value)) {
    set(`must be one of: ${prop.enum.map((e) => String(e)).join(", ")}`);
  }
}

/** Every client-side error of a set of arguments, by field path. */
export function validateArgs(schema: JsonSchema, value: Record<string, unknown>): Errors {
  const errors: Errors = {};
  for (const name of fieldNames(schema)) {
    checkValue(schema.properties![name], value[name], isRequired(schema, name), name, errors);
  }
  return errors;
}

/** Errors as the lines `validate()` answers: `path: message`. */
export function errorLines(errors: Errors): string[] {
  return Object.entries(errors).map(([path, message]) => `${path}: ${message}`);
}

/** `?args=<base64 JSON>` (the runs page's "re-run with edits") as an arguments object. */
export function decodeArgsParam(param: string | null): Record<string, unknown> | null {
  if (!param) return null;
  try {
    // base64url or base64 (a `+` that reached us unescaped reads as a space)
    const b64 = param.replace(/[-\s]/g, "+").replace(/_/g, "/").replace(/=+$/, "");
    const binary = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const value: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return value && typeof value === "object" && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/** The inverse of `decodeArgsParam` (base64url of the UTF-8 JSON). */
export function encodeArgsParam(args: Record<string, unknown>): string {
  const bytes = new TextEncoder().encode(JSON.stringify(args));
  let binary = "";
  bytes.forEach((b) => (binary += String.fromCharCode(b)));
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
