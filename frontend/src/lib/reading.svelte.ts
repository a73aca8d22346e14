// What a page is reading from the server: whether a read is under way and why the last one
// failed. Every list page reads the same way; this keeps that in one place.
import { errorText } from "../api/client";

export class Reading {
  active = $state(true);
  error = $state("");

  /** Run `read`; `active` while it runs; its failure's message becomes `error`. */
  async run(read: () => Promise<void>): Promise<void> {
    this.active = true;
    try {
      await read();
      this.error = "";
    } catch (e) {
      this.error = errorText(e);
    } finally {
      this.active = false;
    }
  }
}
