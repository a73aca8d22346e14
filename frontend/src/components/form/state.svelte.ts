// What the fields of one SchemaForm share: the errors (computed from the value, plus those
// only an input knows, such as JSON that does not parse), which fields were touched, and
// whether `validate()` was called (then every error shows).
import { getContext, setContext, untrack } from "svelte";
import type { Errors } from "../../lib/schema";

const KEY = Symbol("schema-form");

export class FormState {
  /** Errors of text that is not a value yet (bad JSON, unreadable number), by path. */
  local = $state<Errors>({});
  touched = $state<Record<string, boolean>>({});
  /** Set by validate(): errors show on untouched fields too. */
  showAll = $state(false);
  #compute: () => Errors;
  /** The errors of the current value (lib/schema.ts `validateArgs`). */
  computed = $derived.by(() => this.#compute());

  constructor(
    public readonly id: string,
    compute: () => Errors,
  ) {
    this.#compute = compute;
  }

  /** Every error, by path (an input's own error first). */
  get all(): Errors {
    return { ...this.computed, ...this.local };
  }

  /** The error shown beside the field at `path`, if any. */
  shown(path: string): string | undefined {
    if (!this.showAll && !this.touched[path]) return undefined;
    return this.local[path] ?? this.computed[path];
  }

  touch(path: string): void {
    if (!this.touched[path]) this.touched[path] = true;
  }

  /** Called from effects: reads nothing reactively (no effect re-runs for its own write). */
  setLocal(path: string, message: string | undefined): void {
    untrack(() => {
      if (message) {
        if (this.local[path] !== message) this.local[path] = message;
      } else if (path in this.local) {
        delete this.local[path];
      }
    });
  }

  /** A DOM id for the input at `path`. */
  inputId(path: string): string {
    return `${this.id}-${path.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  }
}

export function provideForm(form: FormState): void {
  setContext(KEY, form);
}

export function useForm(): FormState {
  return getContext<FormState>(KEY);
}
