// Types shared by ObjectList.svelte and the pages that use it.
import type { Snippet } from "svelte";

/** One column of an ObjectList: a header and either plain text or a snippet per item. */
export type Column<T> = {
  label: string;
  /** The cell as text (also what the search box matches when `search` is not given). */
  text?: (item: T) => string;
  /** The cell as markup; wins over `text`. */
  cell?: Snippet<[T]>;
  /** A class on the cells (e.g. "mono", "nowrap"). */
  class?: string;
};
