// A small graphql-transport-ws client: one socket, many subscriptions, reconnects with
// backoff and re-subscribes (creditsUpdated answers with the current state at once, so a
// reconnect catches up). The bearer token goes in the connection_init payload.

export type LiveStatus = "connecting" | "live" | "offline" | "unauthorized";

export interface GraphQLFormattedError {
  message: string;
  extensions?: { code?: string };
}

interface Sink {
  query: string;
  variables: Record<string, unknown>;
  next: (data: Record<string, unknown>) => void;
  error: (errors: GraphQLFormattedError[]) => void;
}

export interface LiveOptions {
  /** ws:// or wss:// URL of the GraphQL endpoint. */
  url: string;
  /** The bearer token (without "Bearer "), read at each (re)connect. */
  token: () => string | null;
  onStatus?: (status: LiveStatus) => void;
}

/** The websocket URL of a same-origin or absolute HTTP GraphQL endpoint. */
export function websocketUrl(httpUrl: string, base: string = location.href): string {
  const url = new URL(httpUrl, base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.hash = "";
  return url.toString();
}

/**
 * Delay before reconnect attempt `retry` (0, 1, 2, ...): exponential up to 10 s, with
 * "equal jitter" (half fixed, half random) so that after a server restart thousands of
 * widgets do not reconnect in the same instant, yet none waits less than half the step.
 */
export function backoff(retry: number, random: () => number = Math.random): number {
  const step = Math.min(10_000, 500 * 2 ** Math.min(retry, 10));
  return Math.round(step / 2 + random() * (step / 2));
}

export class LiveClient {
  private socket: WebSocket | null = null;
  private acked = false;
  private sinks = new Map<string, Sink>();
  private nextId = 1;
  private retries = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;
  status: LiveStatus = "connecting";

  constructor(private readonly options: LiveOptions) {}

  /** Starts a subscription; the returned function stops it. */
  subscribe(
    query: string,
    variables: Record<string, unknown>,
    next: Sink["next"],
    error: Sink["error"] = () => undefined,
  ): () => void {
    const id = String(this.nextId++);
    this.sinks.set(id, { query, variables, next, error });
    if (this.socket && this.acked) this.send(id);
    else this.connect();
    return () => {
      if (!this.sinks.delete(id)) return;
      if (this.socket && this.acked) this.raw({ id, type: "complete" });
    };
  }

  /** Closes the socket for good. */
  dispose(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.sinks.clear();
    this.socket?.close(1000, "bye");
    this.socket = null;
  }

  /** Drops the socket and connects again (after a new token, for instance). */
  reconnect(): void {
    this.socket?.close(1000, "reconnect");
    this.socket = null;
    this.retries = 0;
    if (this.sinks.size) this.connect();
  }

  private setStatus(status: LiveStatus): void {
    this.status = status;
    this.options.onStatus?.(status);
  }

  private connect(): void {
    if (this.socket || this.closed) return;
    const token = this.options.token();
    this.setStatus("connecting");
    const socket = new WebSocket(this.options.url, "graphql-transport-ws");
    this.socket = socket;
    this.acked = false;
    socket.onopen = () => {
      const payload = token ? { Authorization: `Bearer ${token}` } : {};
      socket.send(JSON.stringify({ type: "connection_init", payload }));
    };
    socket.onmessage = (event) => this.onMessage(socket, String(event.data));
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.acked = false;
      if (event.code === 4403 || event.code === 4401) {
        this.setStatus("unauthorized");
        return;
      }
      this.setStatus("offline");
      if (!this.closed && this.sinks.size) {
        this.timer = setTimeout(() => this.connect(), backoff(this.retries++));
      }
    };
  }

  private onMessage(socket: WebSocket, text: string): void {
    let message: { type: string; id?: string; payload?: unknown };
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    switch (message.type) {
      case "connection_ack":
        this.acked = true;
        this.retries = 0;
        this.setStatus("live");
        for (const id of this.sinks.keys()) this.send(id);
        break;
      case "ping":
        socket.send(JSON.stringify({ type: "pong" }));
        break;
      case "next": {
        const sink = message.id ? this.sinks.get(message.id) : undefined;
        const payload = message.payload as {
          data?: Record<string, unknown> | null;
          errors?: GraphQLFormattedError[];
        };
        if (sink && payload.errors?.length) sink.error(payload.errors);
        else if (sink && payload.data) sink.next(payload.data);
        break;
      }
      case "error": {
        const sink = message.id ? this.sinks.get(message.id) : undefined;
        if (sink) {
          this.sinks.delete(message.id as string);
          sink.error(message.payload as GraphQLFormattedError[]);
        }
        break;
      }
      default:
        break;
    }
  }

  private send(id: string): void {
    const sink = this.sinks.get(id);
    if (!sink) return;
    this.raw({ id, type: "subscribe", payload: { query: sink.query, variables: sink.variables } });
  }

  private raw(message: Record<string, unknown>): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }
}
