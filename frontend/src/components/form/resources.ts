// The resources of one type the caller may read, for resource pickers. One request per
// (workspace, type) for a few seconds, however many pickers ask.
import { api, ok } from "../../api/client";

const TTL_MS = 10_000;
const cache = new Map<string, { at: number; paths: Promise<string[]> }>();

export function resourcePaths(workspace: string, type: string): Promise<string[]> {
  const key = `${workspace}\n${type}`;
  const hit = cache.get(key);
  if (hit && Date.now() - hit.at < TTL_MS) return hit.paths;
  const paths = ok(
    api.GET("/api/w/{workspace}/resources/list", {
      params: { path: { workspace }, query: { resource_type: type, per_page: 1000 } },
    }),
  ).then((list) => list.map((r) => r.path));
  cache.set(key, { at: Date.now(), paths });
  paths.catch(() => cache.delete(key));
  return paths;
}
