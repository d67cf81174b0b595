// Statement: the credit ledger over a date range, newest first, each entry with its signed
// amount and the balance after it, paged with "Load more", and the same range as CSV.

import type { JSX } from "preact";
import { graphql } from "../../gql";
import { useEffect, useMemo, useState } from "preact/hooks";
import { formatUsd, formatUsdExact, toUnits } from "../../lib/money";
import { ApiError, gql } from "../api";
import type { PageProps } from "../app";
import { Button, Card, EmptyState, ErrorState, formatDate, IconFile, Skeleton } from "../ui";
import {
  describeRange,
  ExportButton,
  type Range,
  RangePicker,
  type RangeChoice,
  readRangeFromUrl,
  resolveRange,
  unitsToDecimal,
  writeUrl,
} from "./usage";

const PAGE_SIZE = 50;

const LEDGER = graphql(`query Ledger($id: ID!, $first: Int!, $after: String, $from: DateTime, $to: DateTime) {
  team(id: $id) { id ledger(first: $first, after: $after, from: $from, to: $to) {
    edges { node { id kind amount balanceAfter description createdAt } }
    pageInfo { hasNextPage endCursor } } } }`);

type Kind = "GRANT" | "PURCHASE" | "PROMO_CODE" | "AUTO_TOP_UP" | "USAGE" | "EXPIRY" | "REFUND" | "DISPUTE" | "ADJUSTMENT";

interface Entry {
  id: string;
  kind: Kind;
  amount: string;
  balanceAfter: string;
  description: string | null;
  createdAt: string;
}

interface LedgerPage {
  edges: { node: Entry }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

export const KIND_WORDS: Record<Kind, string> = {
  GRANT: "Credit grant",
  PURCHASE: "Credit purchase",
  PROMO_CODE: "Promo code",
  AUTO_TOP_UP: "Auto top-up",
  USAGE: "Usage",
  EXPIRY: "Credits expired",
  REFUND: "Refund",
  DISPUTE: "Chargeback",
  ADJUSTMENT: "Adjustment",
};

export function StatementPage(props: PageProps): JSX.Element {
  const [choice, setChoice] = useState<RangeChoice>(() => readRangeFromUrl("30d"));
  const resolved = useMemo(() => resolveRange(choice), [choice.preset, choice.fromDay, choice.toDay]);
  const range = typeof resolved === "string" ? null : resolved;
  useEffect(() => {
    writeUrl({
      range: choice.preset === "30d" ? null : choice.preset, // the default stays out of the address
      from: choice.preset === "custom" ? choice.fromDay : null,
      to: choice.preset === "custom" ? choice.toDay : null,
    });
  }, [choice]);
  return (
    <div class="stack-page statement-page" data-testid="statement-page">
      <Card
        title="Statement"
        subtitle={range ? `${describeRange(range)}, newest first` : "Dates and times are UTC."}
        actions={<ExportButton teamId={props.teamId} kind="LEDGER" range={range} testid="statement-export" />}
        testid="statement-card"
      >
        <div class="usage-controls">
          <RangePicker choice={choice} onChange={setChoice} problem={typeof resolved === "string" ? resolved : null} />
        </div>
        {range ? (
          <Ledger key={`${range.from.toISOString()}|${range.to.toISOString()}`} teamId={props.teamId} range={range} />
        ) : (
          <EmptyState title="Choose a date range">Pick a preset or both days of a custom range.</EmptyState>
        )}
      </Card>
    </div>
  );
}

function Ledger(props: { teamId: string; range: Range }): JSX.Element {
  const [entries, setEntries] = useState<Entry[]>([]);
  const [pageInfo, setPageInfo] = useState<LedgerPage["pageInfo"] | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<ApiError | null>(null);
  const [tick, setTick] = useState(0);

  const load = (after: string | null): Promise<void> => {
    setLoading(true);
    setError(null);
    return gql(LEDGER, {
      id: props.teamId,
      first: PAGE_SIZE,
      after,
      from: props.range.from.toISOString(),
      to: props.range.to.toISOString(),
    })
      .then((data) => {
        const page = data.team?.ledger ?? { edges: [], pageInfo: { hasNextPage: false, endCursor: null } };
        setEntries((shown) => {
          const known = new Set(shown.map((entry) => entry.id));
          return [...(after ? shown : []), ...page.edges.map((edge) => edge.node).filter((node) => !after || !known.has(node.id))];
        });
        setPageInfo(page.pageInfo);
      })
      .catch((caught: unknown) => setError(caught instanceof ApiError ? caught : new ApiError(String(caught), "INTERNAL")))
      .finally(() => setLoading(false));
  };
  useEffect(() => {
    void load(null);
  }, [tick]);

  if (error && !pageInfo) {
    return <ErrorState error={error} retry={() => setTick((value) => value + 1)} />;
  }
  if (!pageInfo) return <Skeleton lines={6} height={18} />;
  if (!entries.length) {
    return (
      <EmptyState title="Nothing on the statement for this range" icon={<IconFile />}>
        Credits granted, bought or used between {describeRange(props.range).replace(" (UTC)", "")} (UTC) would be listed
        here.
      </EmptyState>
    );
  }
  const complete = !pageInfo.hasNextPage;
  return (
    <div class="statement" data-testid="statement">
      <Summary entries={entries} complete={complete} />
      <p class="table-note">Amounts are rounded to cents; point at one for the exact value. Times are UTC.</p>
      <div class="table-scroll" tabIndex={0} role="region" aria-label="Statement entries">
        <table class="table statement-table" data-testid="statement-table">
          <caption class="table-caption">Ledger entries, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Date (UTC)</th>
              <th scope="col">Kind</th>
              <th scope="col">Description</th>
              <th scope="col" class="num">Amount</th>
              <th scope="col" class="num">Balance after</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((entry) => {
              const negative = toUnits(entry.amount) < 0n;
              return (
                <tr
                  key={entry.id}
                  data-testid="statement-row"
                  data-kind={entry.kind}
                  data-amount={entry.amount}
                  data-balance-after={entry.balanceAfter}
                >
                  <td class="cell-nowrap cell-date">{formatDate(entry.createdAt, true)}</td>
                  <td class="cell-nowrap cell-kind">{KIND_WORDS[entry.kind] ?? entry.kind}</td>
                  <td class="cell-text cell-description">{entry.description ?? <span class="muted">—</span>}</td>
                  <td
                    class={negative ? "num cell-amount amount-debit" : "num cell-amount amount-credit"}
                    title={formatUsdExact(signed(entry.amount))}
                    data-testid="statement-amount"
                  >
                    {signedCents(entry.amount)}
                  </td>
                  <td class="num cell-balance" title={formatUsdExact(entry.balanceAfter)} data-testid="statement-balance">
                    {formatUsd(entry.balanceAfter)}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {error && (
        <div class="form-error" role="alert" data-testid="statement-more-error">
          {error.message}
        </div>
      )}
      {pageInfo.hasNextPage && (
        <div class="row">
          <Button
            kind="ghost"
            type="button"
            busy={loading}
            onClick={() => void load(pageInfo.endCursor)}
            testid="statement-more"
          >
            Load more
          </Button>
          <span class="muted small">{entries.length} entries shown</span>
        </div>
      )}
    </div>
  );
}

/** "+5.00" / "-0.01234": the sign always written, so credits and debits read apart. */
function signed(amount: string): string {
  return amount.trim().startsWith("-") ? amount.trim() : `+${amount.trim()}`;
}

function signedCents(amount: string): string {
  const units = toUnits(amount);
  const size = formatUsd(unitsToDecimal(units < 0n ? -units : units));
  // A debit under half a cent still reads as a debit ("-$0.00"); the title has it exactly.
  return units < 0n ? `-${size}` : units > 0n ? `+${size}` : size;
}

/** Opening and closing balance of the loaded entries, and what came in and went out. */
function Summary(props: { entries: Entry[]; complete: boolean }): JSX.Element {
  const newest = props.entries[0];
  const oldest = props.entries[props.entries.length - 1];
  let credits = 0n;
  let debits = 0n;
  for (const entry of props.entries) {
    const units = toUnits(entry.amount);
    if (units >= 0n) credits += units;
    else debits += units;
  }
  const opening = unitsToDecimal(toUnits(oldest.balanceAfter) - toUnits(oldest.amount));
  return (
    <div class="tiles statement-tiles" data-testid="statement-summary">
      <Tile
        label={props.complete ? "Opening balance" : "Balance before the oldest shown"}
        value={opening}
        testid="statement-opening"
      />
      <Tile label="Credits in" value={unitsToDecimal(credits)} testid="statement-in" />
      <Tile label="Used or removed" value={unitsToDecimal(debits)} testid="statement-out" />
      <Tile label="Closing balance" value={newest.balanceAfter} testid="statement-closing" />
    </div>
  );
}

function Tile(props: { label: string; value: string; testid: string }): JSX.Element {
  return (
    <div class="tile">
      <div class="tile-label">{props.label}</div>
      <div class="tile-value" title={formatUsdExact(props.value)} data-value={props.value} data-testid={props.testid}>
        {formatUsd(props.value)}
      </div>
    </div>
  );
}
