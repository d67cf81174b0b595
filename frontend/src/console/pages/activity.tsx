// Activity: the team's audit log (who changed billing settings and members), newest first.
// Admins only: members see why the page is empty rather than an error.

import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { graphql } from "../../gql";
import type { AuditAction, AuditLogQuery } from "../../gql/graphql";
import { asUserErrors, gql } from "../api";
import type { PageProps } from "../app";
import { Button, Card, EmptyState, formatDate, IconFile, Loadable, Skeleton, useQuery } from "../ui";

const AUDIT_LOG = graphql(`
  query AuditLog($id: ID!, $after: String) {
    team(id: $id) {
      id
      auditLog(first: 25, after: $after) {
        edges { node { id action actor oldValue newValue createdAt } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
`);

type Entry = NonNullable<AuditLogQuery["team"]>["auditLog"]["edges"][number]["node"];

/** Each action in words. */
const ACTIONS: Record<AuditAction, string> = {
  INVOICED_LIMIT_CHANGED: "Changed the invoiced spending limit",
  MEMBER_ADDED: "Invited a member",
  MEMBER_REMOVED: "Removed a member",
  MEMBER_ROLE_CHANGED: "Changed a member's role",
  AUTO_TOP_UP_CONFIGURED: "Configured auto top-up",
  PAYMENT_METHOD_ADDED: "Added a payment method",
  PAYMENT_METHOD_REMOVED: "Removed a payment method",
  DEFAULT_PAYMENT_METHOD_CHANGED: "Changed the default payment method",
  BILLING_ADDRESS_UPDATED: "Updated the billing address",
  INVITATION_ACCEPTED: "Accepted an invitation",
  INVITATION_DECLINED: "Declined an invitation",
  INVITATION_CANCELED: "Withdrew an invitation",
  MEMBER_LEFT: "Left the team",
};

export function ActivityPage(props: PageProps): JSX.Element {
  if (!props.canEdit) {
    return (
      <Card title="Activity" testid="activity">
        <EmptyState title="Admins only" icon={<IconFile />}>
          The team's activity log is for its admins. Ask one if you need to know who changed what.
        </EmptyState>
      </Card>
    );
  }
  return <AuditLog teamId={props.teamId} />;
}

function AuditLog(props: { teamId: string }): JSX.Element {
  const state = useQuery(AUDIT_LOG, { id: props.teamId, after: null });
  const [more, setMore] = useState<Entry[]>([]);
  const [cursor, setCursor] = useState<{ hasNextPage: boolean; endCursor: string | null } | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const [moreError, setMoreError] = useState<string | null>(null);
  const loadMore = (): void => {
    const pageInfo = cursor ?? state.data?.team?.auditLog.pageInfo;
    if (!pageInfo?.endCursor) return;
    setLoadingMore(true);
    setMoreError(null);
    gql(AUDIT_LOG, { id: props.teamId, after: pageInfo.endCursor })
      .then((data) => {
        if (!data.team) return;
        const page = data.team.auditLog;
        setMore((previous) => [...previous, ...page.edges.map((edge) => edge.node)]);
        setCursor(page.pageInfo);
      })
      .catch((caught: unknown) => setMoreError(asUserErrors(caught)[0].message))
      .finally(() => setLoadingMore(false));
  };
  return (
    <Card title="Activity" subtitle="Who changed billing settings and members, newest first." testid="activity">
      <Loadable state={state} skeleton={<Skeleton lines={5} height={18} />}>
        {(data) => {
          const entries = [...(data.team?.auditLog.edges.map((edge) => edge.node) ?? []), ...more];
          const pageInfo = cursor ?? data.team?.auditLog.pageInfo;
          if (!entries.length) return <EmptyState title="Nothing changed yet" icon={<IconFile />} />;
          return (
            <>
              <ul class="activity">
                {entries.map((entry) => (
                  <li key={entry.id} class="activity-item" data-testid="audit-entry" data-action={entry.action}>
                    <div>
                      <strong>{ACTIONS[entry.action] ?? entry.action}</strong>
                      <div class="muted small">
                        {entry.actor === "system" ? "Creditline" : entry.actor} · {formatDate(entry.createdAt, true)}
                      </div>
                    </div>
                    <Change before={entry.oldValue} after={entry.newValue} />
                  </li>
                ))}
              </ul>
              {moreError && (
                <div class="form-error" role="alert">
                  {moreError}
                </div>
              )}
              {pageInfo?.hasNextPage && (
                <div class="row">
                  <Button kind="ghost" type="button" busy={loadingMore} onClick={loadMore} testid="activity-more">
                    Load more
                  </Button>
                </div>
              )}
            </>
          );
        }}
      </Loadable>
    </Card>
  );
}

/** What changed: the fields that differ, before → after (the whole value if not a record). */
function Change(props: { before: unknown; after: unknown }): JSX.Element | null {
  const record = (value: unknown): Record<string, unknown> | null =>
    value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  const [old, now] = [record(props.before), record(props.after)];
  let rows: [string, unknown, unknown][];
  if (old || now) {
    const keys = [...new Set([...Object.keys(old ?? {}), ...Object.keys(now ?? {})])];
    rows = keys
      .map((key): [string, unknown, unknown] => [key, old?.[key], now?.[key]])
      .filter(([, a, b]) => JSON.stringify(a) !== JSON.stringify(b));
  } else {
    rows = [["", props.before, props.after]];
  }
  if (!rows.length) return null;
  return (
    <dl class="change">
      {rows.slice(0, 8).map(([key, a, b]) => (
        <div key={key} class="change-row">
          {key && <dt>{humanKey(key)}</dt>}
          <dd>
            {a !== undefined && a !== null && <span class="change-old">{text(a)}</span>}
            {a !== undefined && a !== null && b !== undefined && b !== null && " → "}
            {b !== undefined && b !== null && <span class="change-new">{text(b)}</span>}
            {(a === undefined || a === null) && (b === undefined || b === null) && <span class="muted">none</span>}
          </dd>
        </div>
      ))}
    </dl>
  );
}

function humanKey(key: string): string {
  const words = key.replace(/([a-z])([A-Z])/g, "$1 $2").replace(/_/g, " ").toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function text(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "number") return String(value);
  return JSON.stringify(value);
}
