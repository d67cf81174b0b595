// GraphQL over HTTP for the console, and the live client for subscriptions.
//
// Every document is written with `graphql(...)` from src/gql (generated from the exported
// schema by `npm run codegen`), so results, variables and error codes are typed: pages
// branch on `UserError.code`, never on message text.

import type { ErrorCode, TypedDocumentString } from "../gql/graphql";
import { LiveClient, type LiveStatus, websocketUrl } from "../lib/live";
import { getToken, setToken } from "./session";

/** A typed document from `graphql(...)`: its result and variables travel with it. */
export type Document<R, V> = TypedDocumentString<R, V>;
export type { ErrorCode };

/** Codes of failures the console itself raises, beside the API's ErrorCode. */
export type ConsoleCode = "NETWORK" | "CARD_DECLINED" | "CARD_INCOMPLETE";

export interface UserError {
  code: ErrorCode | ConsoleCode | TopLevelCode;
  message: string;
  field?: string | null;
}

/** Top-level (not payload) failures the server names in `extensions.code`. */
export type TopLevelCode =
  | "UNAUTHENTICATED"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "BAD_REQUEST"
  | "RATE_LIMITED"
  | "INTERNAL"
  | "NETWORK";

/** A top-level failure, with the words a person should read for its code. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: TopLevelCode,
  ) {
    super(message);
  }
}

const TOP_LEVEL_WORDS: Partial<Record<TopLevelCode, string>> = {
  UNAUTHENTICATED: "Your session ended. Sign in again.",
  FORBIDDEN: "You do not have access to this team.",
  NOT_FOUND: "This team does not exist, or you are not a member of it.",
  // The request's own fault: the console sends only what the schema allows, so this is a
  // console older than the server (or a bug). The server's text is for developers.
  BAD_REQUEST: "The console could not send this request. Reload the page and try again.",
  RATE_LIMITED: "Too many requests. Wait a moment and try again.",
  INTERNAL: "The server had a problem. Retry in a moment.",
};

function topLevelCode(code: unknown): TopLevelCode {
  const known: TopLevelCode[] = ["UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "BAD_REQUEST", "RATE_LIMITED", "INTERNAL"];
  return known.includes(code as TopLevelCode) ? (code as TopLevelCode) : "INTERNAL";
}

let endpoint = "/graphql";

export function setEndpoint(path: string): void {
  endpoint = path;
}

export function graphqlEndpoint(): string {
  return endpoint;
}

export async function gql<R, V>(document: Document<R, V>, variables: V): Promise<R> {
  const token = getToken();
  let response: Response;
  try {
    response = await fetch(endpoint, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify({ query: document.toString(), variables }),
    });
  } catch {
    throw new ApiError("The server cannot be reached. Check your connection and retry.", "NETWORK");
  }
  const body = (await response.json().catch(() => null)) as {
    data?: R;
    errors?: { message: string; extensions?: { code?: string } }[];
  } | null;
  if (!body) throw new ApiError(`The server had a problem (HTTP ${response.status}). Retry in a moment.`, "INTERNAL");
  const first = body.errors?.[0];
  if (first) {
    const code = topLevelCode(first.extensions?.code);
    if (code === "UNAUTHENTICATED") {
      sessionStorage.setItem("creditline.expired", "1"); // the sign-in page says why
      setToken(null);
    }
    if (code === "BAD_REQUEST") console.warn("GraphQL request refused:", first.message);
    throw new ApiError(TOP_LEVEL_WORDS[code] ?? first.message, code);
  }
  return body.data as R;
}

/** A mutation's payload (`{..., errors}`), top-level failures thrown as ApiError. */
export async function mutate<R extends Record<string, { errors: UserError[] }>, V>(
  document: Document<R, V>,
  variables: V,
): Promise<R[keyof R]> {
  const data = await gql(document, variables);
  return Object.values(data)[0] as R[keyof R];
}

/** A failure as a UserError with no field, for the form-level message. */
export function asUserErrors(error: unknown): UserError[] {
  if (error instanceof ApiError) return [{ code: error.code, message: error.message, field: null }];
  console.error(error);
  return [{ code: "INTERNAL", message: "Something went wrong in the console. Reload the page and try again.", field: null }];
}

let live: LiveClient | null = null;
const statusListeners = new Set<(status: LiveStatus) => void>();

export function liveClient(): LiveClient {
  if (!live) {
    live = new LiveClient({
      url: websocketUrl(endpoint),
      token: getToken,
      onStatus: (status) => statusListeners.forEach((listener) => listener(status)),
    });
  }
  return live;
}

export function onLiveStatus(listener: (status: LiveStatus) => void): () => void {
  statusListeners.add(listener);
  return () => statusListeners.delete(listener);
}

/** A typed subscription on the shared live socket; the returned function stops it. */
export function subscribe<R, V>(
  document: Document<R, V>,
  variables: V,
  next: (data: R) => void,
  error: (codes: string[]) => void = () => undefined,
): () => void {
  return liveClient().subscribe(
    document.toString(),
    variables as Record<string, unknown>,
    (data) => next(data as R),
    (errors) => error(errors.map((e) => e.extensions?.code ?? "INTERNAL")),
  );
}

export function resetLive(): void {
  live?.dispose();
  live = null;
}
