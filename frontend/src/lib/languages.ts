// Syntax highlighting for a script, chosen by the file name its runtime gives it ("main" + the
// first of `file_extensions` from GET /api/runtimes). @codemirror/language-data only describes
// the languages; each pack is a dynamic import, fetched the first time a script needs it. A
// runtime from a third-party plugin is highlighted whenever its extension is one CodeMirror
// knows (.pl → Perl), with no change here; an unknown extension is plain text.
import { LanguageDescription, type LanguageSupport } from "@codemirror/language";
import { languages } from "@codemirror/language-data";
import type { Schemas } from "../api/client";

/** The file name a script of `runtime` would have: `main.py`, `main.pl`, … */
export function scriptFilename(runtime: Schemas["RuntimeInfo"] | undefined): string {
  const ext = runtime?.file_extensions[0] ?? "";
  return `main${ext.startsWith(".") || ext === "" ? ext : `.${ext}`}`;
}

/** The language description matching `filename`, if CodeMirror has one. */
export function describe(filename: string): LanguageDescription | null {
  return filename ? LanguageDescription.matchFilename(languages, filename) : null;
}

/** The language support for `filename` (loaded on first use), or null for plain text. */
export async function loadLanguage(
  filename: string,
): Promise<{ name: string; support: LanguageSupport } | null> {
  const description = describe(filename);
  if (!description) return null;
  const support = await description.load();
  return { name: description.name, support };
}
