// Every page of the UI: a path pattern and the component (loaded when first visited, so a
// page's code and its dependencies, CodeMirror above all, are only fetched where used).
// `chrome: false` pages render without the workspace header (login, shareable app pages).
import type { Component } from "svelte";

export type Route = {
  pattern: string;
  load: () => Promise<{ default: Component<any> }>;
  chrome?: boolean;
  /** Shown in the navigation bar. */
  nav?: string;
  /** Other pages under the same navigation entry (it shows as active on them too). */
  navAlso?: string[];
};

export const routes: Route[] = [
  { pattern: "/login", load: () => import("./pages/Login.svelte"), chrome: false },
  {
    pattern: "/approve/:ws/:id/:resume_id/:signature",
    load: () => import("./pages/ApprovalPage.svelte"),
    chrome: false,
  },
  { pattern: "/a/:ws/*path", load: () => import("./pages/AppPage.svelte"), chrome: false },
  { pattern: "/w/:ws", load: () => import("./pages/Home.svelte"), nav: "Home" },
  { pattern: "/w/:ws/scripts/new", load: () => import("./pages/ScriptEditor.svelte") },
  { pattern: "/w/:ws/scripts/edit/*path", load: () => import("./pages/ScriptEditor.svelte") },
  { pattern: "/w/:ws/scripts/get/*path", load: () => import("./pages/ScriptPage.svelte") },
  { pattern: "/w/:ws/flows/new", load: () => import("./pages/FlowEditor.svelte") },
  { pattern: "/w/:ws/flows/edit/*path", load: () => import("./pages/FlowEditor.svelte") },
  { pattern: "/w/:ws/flows/get/*path", load: () => import("./pages/FlowPage.svelte") },
  { pattern: "/w/:ws/runs", load: () => import("./pages/Runs.svelte"), nav: "Runs" },
  { pattern: "/w/:ws/run/:id", load: () => import("./pages/JobPage.svelte") },
  // The trigger pages: one entry ("Triggers"), their tabs on the pages (TriggerTabs).
  {
    pattern: "/w/:ws/schedules",
    load: () => import("./pages/Schedules.svelte"),
    nav: "Triggers",
    navAlso: ["/w/:ws/routes", "/w/:ws/postgres_triggers"],
  },
  { pattern: "/w/:ws/routes", load: () => import("./pages/HttpRoutes.svelte") },
  { pattern: "/w/:ws/postgres_triggers", load: () => import("./pages/PostgresTriggers.svelte") },
  { pattern: "/w/:ws/variables", load: () => import("./pages/Variables.svelte"), nav: "Variables" },
  { pattern: "/w/:ws/resources", load: () => import("./pages/Resources.svelte"), nav: "Resources" },
  {
    pattern: "/w/:ws/resource_types",
    load: () => import("./pages/ResourceTypes.svelte"),
    nav: "Resource types",
  },
  { pattern: "/w/:ws/folders", load: () => import("./pages/Folders.svelte"), nav: "Folders" },
  { pattern: "/w/:ws/groups", load: () => import("./pages/Groups.svelte"), nav: "Groups" },
  { pattern: "/w/:ws/users", load: () => import("./pages/Users.svelte"), nav: "Users" },
  { pattern: "/w/:ws/tokens", load: () => import("./pages/Tokens.svelte"), nav: "Tokens" },
  { pattern: "/w/:ws/audit", load: () => import("./pages/Audit.svelte"), nav: "Audit log" },
];
