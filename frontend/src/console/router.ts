// Path routing: /t/<teamId>/<page>. The server answers every such path with index.html.

import { useEffect, useState } from "preact/hooks";

export type Page = "credits" | "payment" | "usage" | "statement" | "invoices" | "members" | "notifications" | "activity" | "api-keys";
export const PAGES: Page[] = ["credits", "payment", "usage", "statement", "invoices", "members", "notifications", "activity", "api-keys"];

export interface Route {
  teamId: string | null;
  page: Page;
}

export function parse(pathname: string): Route {
  const match = /^\/t\/([^/]+)(?:\/([a-z-]+))?\/?$/.exec(pathname);
  if (!match) return { teamId: null, page: "credits" };
  const page = (PAGES as string[]).includes(match[2] ?? "") ? (match[2] as Page) : "credits";
  return { teamId: decodeURIComponent(match[1]), page };
}

export function href(teamId: string, page: Page): string {
  return `/t/${encodeURIComponent(teamId)}/${page}`;
}

const listeners = new Set<() => void>();

export function navigate(path: string, replace = false): void {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  listeners.forEach((listener) => listener());
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(location.pathname));
  useEffect(() => {
    const update = (): void => setRoute(parse(location.pathname));
    listeners.add(update);
    window.addEventListener("popstate", update);
    return () => {
      listeners.delete(update);
      window.removeEventListener("popstate", update);
    };
  }, []);
  return route;
}

/** An in-app link: plain <a href> for new tabs, pushState for ordinary clicks. */
export function onLinkClick(event: MouseEvent, path: string): void {
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate(path);
}
