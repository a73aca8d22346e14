// The languages the server speaks (GET /api/runtimes): names, file extensions and templates.
// Nothing about a language is hard-coded here, so a third-party runtime shows up as it is.
import { api, ok, type Schemas } from "../api/client";

class Runtimes {
  list = $state<Schemas["RuntimeInfo"][]>([]);
  #loading: Promise<void> | null = null;

  load(): Promise<void> {
    this.#loading ??= ok(api.GET("/api/runtimes")).then((list) => {
      this.list = list;
    });
    return this.#loading;
  }

  get(name: string): Schemas["RuntimeInfo"] | undefined {
    return this.list.find((r) => r.name === name || r.aliases.includes(name));
  }
}

export const runtimes = new Runtimes();
