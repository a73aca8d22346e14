// Who is logged in, the workspaces they belong to, and their role in the current one.
// Pages read `session` to decide what to offer; the server checks every call anyway.
import { api, ok, type Schemas } from "../api/client";

const LAST_WORKSPACE = "gristmill.workspace";

class Session {
  user = $state<Schemas["GlobalUserInfo"] | null>(null);
  workspaces = $state<Schemas["UserWorkspace"][]>([]);
  /** The caller's membership in the workspace being viewed. */
  member = $state<Schemas["User"] | null>(null);
  workspace = $state<string | null>(null);
  loaded = $state(false);

  /** Admins and developers write; operators only run and read. */
  get canWrite(): boolean {
    return !!this.member && !this.member.operator;
  }
  get isAdmin(): boolean {
    return !!this.member?.is_admin || !!this.user?.super_admin;
  }

  /** Load the user and their workspaces; false when no session is open. */
  async load(): Promise<boolean> {
    try {
      this.user = await ok(api.GET("/api/users/whoami"));
      const list = await ok(api.GET("/api/workspaces/users"));
      this.workspaces = list.workspaces;
      return true;
    } catch {
      this.user = null;
      this.workspaces = [];
      return false;
    } finally {
      this.loaded = true;
    }
  }

  /** The workspace to open when none is named in the URL: the last one used, or the first. */
  defaultWorkspace(): string | null {
    const last = localStorage.getItem(LAST_WORKSPACE);
    if (last && this.workspaces.some((w) => w.id === last)) return last;
    return this.workspaces[0]?.id ?? null;
  }

  async enter(workspace: string): Promise<void> {
    if (this.workspace === workspace && this.member) return;
    this.workspace = workspace;
    localStorage.setItem(LAST_WORKSPACE, workspace);
    this.member = null;
    this.member = await ok(
      api.GET("/api/w/{workspace}/users/whoami", { params: { path: { workspace } } }),
    );
  }

  async logout(): Promise<void> {
    await api.POST("/api/auth/logout", { parseAs: "text" });
    this.user = null;
    this.member = null;
    this.workspace = null;
  }
}

export const session = new Session();
