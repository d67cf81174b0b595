// The console's configuration (from the server) and the signed-in token.

export interface ConsoleConfig {
  environment: "development" | "test" | "production";
  /** A form that mints a token for any email (development and test only). */
  devSignIn: boolean;
  graphqlPath: string;
  stripeJsUrl: string;
  stripePublishableKey: string;
  /** Origins allowed to hand a token over with postMessage (production embedding). */
  tokenOrigins: string[];
}

const TOKEN_KEY = "creditline.token";
const TEAM_KEY = "creditline.team";
const listeners = new Set<() => void>();

export async function loadConfig(): Promise<ConsoleConfig> {
  const response = await fetch("/console-config.json", { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`console configuration unavailable (${response.status})`);
  return (await response.json()) as ConsoleConfig;
}

export function getToken(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(token: string | null): void {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
  listeners.forEach((listener) => listener());
}

export function onTokenChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function lastTeam(): string | null {
  return localStorage.getItem(TEAM_KEY);
}

export function rememberTeam(teamId: string): void {
  localStorage.setItem(TEAM_KEY, teamId);
}

/** The email a token names (read for display only: the server verifies tokens). */
export function tokenIdentity(token: string): { subject: string; email: string } | null {
  try {
    const part = token.split(".")[1] ?? "";
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
    const claims = JSON.parse(json) as { sub?: unknown; email?: unknown };
    if (typeof claims.sub !== "string" || typeof claims.email !== "string") return null;
    return { subject: claims.sub, email: claims.email };
  } catch {
    return null;
  }
}

/**
 * Production hand-off from the host platform: `?token=...` in the URL (removed from the
 * address bar at once) or a `{type: "creditline:token", token}` message from an allowed
 * parent origin.
 *
 * A link's token is never taken silently: anyone can send a link carrying their own token
 * (login CSRF), and a victim signed in as the sender would add their card to the sender's
 * team. It refreshes the session only when it names the account already signed in;
 * otherwise `confirm` is asked, naming the account, and nothing changes until the person
 * says yes.
 */
export function acceptHandoff(config: ConsoleConfig, confirm: (token: string, email: string) => void): () => void {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get("token");
  if (fromUrl) {
    url.searchParams.delete("token");
    history.replaceState(history.state, "", url.pathname + url.search + url.hash);
    const offered = tokenIdentity(fromUrl);
    const current = getToken();
    const signedIn = current ? tokenIdentity(current) : null;
    if (offered && signedIn && offered.subject === signedIn.subject) setToken(fromUrl);
    else if (offered) confirm(fromUrl, offered.email);
  }
  const onMessage = (event: MessageEvent): void => {
    const data = event.data as { type?: string; token?: string } | null;
    if (!data || data.type !== "creditline:token" || typeof data.token !== "string") return;
    if (event.origin !== location.origin && !config.tokenOrigins.includes(event.origin)) return;
    setToken(data.token);
  };
  window.addEventListener("message", onMessage);
  return () => window.removeEventListener("message", onMessage);
}

export async function devSignIn(
  email: string,
  name: string,
): Promise<{ token?: string; error?: { field: string | null; message: string } }> {
  const response = await fetch("/dev/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, name: name || null }),
  });
  const body = (await response.json().catch(() => ({}))) as {
    token?: string;
    error?: { field: string | null; message: string };
  };
  if (!response.ok && !body.error) {
    return { error: { field: null, message: `Sign-in failed (${response.status}).` } };
  }
  return body;
}
