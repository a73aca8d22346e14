// A small history-API router: pages are matched on the path; `*name` captures the rest
// (a script path such as u/admin/hello). Links are plain <a href> (see `link` below).

export type Params = Record<string, string>;

class Location {
  path = $state(window.location.pathname);
  query = $state(new URLSearchParams(window.location.search));
}

export const location = new Location();

function sync(): void {
  location.path = window.location.pathname;
  location.query = new URLSearchParams(window.location.search);
}

window.addEventListener("popstate", sync);

export function navigate(to: string, replace = false): void {
  if (replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  sync();
  window.scrollTo(0, 0);
}

/** Replace the query string without a new history entry (filters kept in the URL). */
export function setQuery(params: Record<string, string | undefined | null>): void {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) query.set(k, v);
  const qs = query.toString();
  history.replaceState(null, "", window.location.pathname + (qs ? `?${qs}` : ""));
  location.query = query;
}

/** Match `pattern` (e.g. `/w/:ws/scripts/get/*path`) against `path`. */
export function match(pattern: string, path: string): Params | null {
  const want = pattern.split("/").filter(Boolean);
  const got = path.split("/").filter(Boolean);
  const params: Params = {};
  for (let i = 0; i < want.length; i++) {
    const part = want[i];
    if (part.startsWith("*")) {
      const rest = got.slice(i);
      if (rest.length === 0) return null;
      params[part.slice(1)] = rest.map(decodeURIComponent).join("/");
      return params;
    }
    if (i >= got.length) return null;
    if (part.startsWith(":")) params[part.slice(1)] = decodeURIComponent(got[i]);
    else if (part !== got[i]) return null;
  }
  return want.length === got.length ? params : null;
}

// Same-origin <a href="/..."> clicks navigate inside the app (not with a modifier key or a
// target, so "open in new tab" still works).
document.addEventListener("click", (event) => {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const a = (event.target as Element | null)?.closest?.("a");
  if (!a || a.target || a.hasAttribute("download") || a.origin !== window.location.origin) return;
  if (a.pathname.startsWith("/api/")) return;
  event.preventDefault();
  navigate(a.pathname + a.search);
});
