// GraphQL over HTTP for the console, and the live client for subscriptions.

import { LiveClient, type LiveStatus, websocketUrl } from "../lib/live";
import { getToken, setToken } from "./session";

export interface UserError {
  code: string;
  message: string;
  field: string | null;
}

/** A top-level failure: UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, INTERNAL, NETWORK, UNAVAILABLE. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

let endpoint = "/graphql";

export function setEndpoint(path: string): void {
  endpoint = path;
}

export async function gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
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
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError("The server cannot be reached. Check your connection and retry.", "NETWORK");
  }
  const body = (await response.json().catch(() => null)) as {
    data?: T;
    errors?: { message: string; extensions?: { code?: string } }[];
  } | null;
  if (!body) throw new ApiError(`The server had a problem (HTTP ${response.status}). Retry in a moment.`, "INTERNAL");
  const first = body.errors?.[0];
  if (first) {
    const code = first.extensions?.code ?? "INTERNAL";
    if (code === "UNAUTHENTICATED") {
      sessionStorage.setItem("creditline.expired", "1"); // the sign-in page says why
      setToken(null);
    }
    // A field this server does not know yet: that part of the API has not shipped here.
    if (/Cannot query field|Unknown argument|Unknown type/.test(first.message)) {
      throw new ApiError("This part of the billing API is not available on this server yet.", "UNAVAILABLE");
    }
    throw new ApiError(first.message, code);
  }
  return body.data as T;
}

/** A mutation's payload (`{..., errors}`), top-level failures thrown as ApiError. */
export async function mutate<P extends { errors: UserError[] }>(
  query: string,
  variables: Record<string, unknown>,
): Promise<P> {
  const data = await gql<Record<string, P>>(query, variables);
  const payload = Object.values(data)[0];
  return payload;
}

/** A failure as a UserError with no field, for the form-level message. */
export function asUserErrors(error: unknown): UserError[] {
  if (error instanceof ApiError) return [{ code: error.code, message: error.message, field: null }];
  return [{ code: "INTERNAL", message: String((error as Error)?.message ?? error), field: null }];
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

export function resetLive(): void {
  live?.dispose();
  live = null;
}
