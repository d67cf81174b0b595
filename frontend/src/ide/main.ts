// GraphiQL 5 served by Creditline itself (no CDN: Monaco and its workers are bundled by
// Vite): queries over HTTP, subscriptions over graphql-transport-ws with the Authorization
// header from the headers editor sent in the connection_init payload, as the API expects.

// Monaco's language workers (GraphQL, JSON) from this origin, before any editor mounts.
import "graphiql/setup-workers/vite";

import { createGraphiQLFetcher, type Fetcher, type FetcherOpts, type FetcherParams } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import "graphiql/style.css";
import { parse } from "graphql";
import { createClient } from "graphql-ws";
import { createElement } from "react";
import { createRoot } from "react-dom/client";

const endpoint = new URL(location.pathname, location.origin).toString();
const wsEndpoint = endpoint.replace(/^http/, "ws");

const http = createGraphiQLFetcher({ url: endpoint, enableIncrementalDelivery: false });

/**
 * The operation to run, and whether it is a subscription. GraphiQL updates its operation
 * name a moment after an edit, so a query run at once (a paste, then Ctrl-Enter) can carry
 * the previous name: with a single operation in the document, that name is dropped.
 */
function inspect(params: FetcherParams): { params: FetcherParams; subscription: boolean } {
  try {
    const document = parse(params.query);
    const operations = document.definitions.filter((definition) => definition.kind === "OperationDefinition");
    const named = operations.find((op) => op.name?.value === params.operationName);
    const chosen = named ?? operations[0];
    const fixed = !named && operations.length === 1 ? { ...params, operationName: chosen?.name?.value ?? null } : params;
    return { params: fixed, subscription: chosen?.operation === "subscription" };
  } catch {
    return { params, subscription: false };
  }
}

/** One websocket per running subscription, authenticated with the editor's headers. */
async function* subscribe(params: FetcherParams, headers: Record<string, unknown>): AsyncGenerator<object> {
  const authorization = Object.entries(headers).find(([name]) => name.toLowerCase() === "authorization")?.[1];
  const client = createClient({
    url: wsEndpoint,
    lazy: true,
    retryAttempts: 0,
    connectionParams: authorization ? { Authorization: String(authorization) } : {},
  });
  try {
    yield* client.iterate({
      query: params.query,
      variables: params.variables ?? undefined,
      operationName: params.operationName ?? undefined,
    });
  } finally {
    await client.dispose();
  }
}

const fetcher: Fetcher = (raw: FetcherParams, opts?: FetcherOpts) => {
  const { params, subscription } = inspect(raw);
  return subscription
    ? (subscribe(params, opts?.headers ?? {}) as ReturnType<Fetcher> & AsyncIterable<never>)
    : http(params, opts);
};

// A token from the billing console on this origin becomes the default Authorization header.
const token = localStorage.getItem("creditline.token");
const defaultHeaders = JSON.stringify(token ? { Authorization: `Bearer ${token}` } : { Authorization: "Bearer <token>" }, null, 2);

const defaultQuery = `# Creditline GraphQL API. Put your bearer token in the Headers tab below.
# Ctrl-Enter runs the query; Ctrl-Space completes.

query WhoAmI {
  viewer {
    email
    memberships {
      role
      team {
        id
        name
        credits { total free promotional prepaid status }
      }
    }
  }
}

# subscription LiveBalance($teamId: ID!) {
#   creditsUpdated(teamId: $teamId) { total status updatedAt }
# }
`;

const root = document.getElementById("graphiql") as HTMLElement;
createRoot(root).render(
  createElement(GraphiQL, {
    fetcher,
    defaultQuery,
    defaultHeaders,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,
    defaultEditorToolsVisibility: "headers",
  }),
);
