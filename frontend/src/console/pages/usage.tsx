// Usage: spend over a date range as a stacked bar chart, grouped by description or a
// dimension key, the same numbers as a table, totals split between credits and invoiced,
// the runway in words, and the CSV export. All dates are UTC days.

import type { JSX } from "preact";
import { graphql } from "../../gql";
import { useEffect, useMemo, useState } from "preact/hooks";
import { formatUsd, formatUsdExact, toUnits } from "../../lib/money";
import { gql } from "../api";
import type { PageProps } from "../app";
import { StackedBars, type StackedSeries } from "../chart";
import { Button, Card, EmptyState, ErrorState, IconClock, Loadable, Skeleton, useQuery } from "../ui";
import "../usage.css";

// ------------------------------------------------------------------ GraphQL documents

const USAGE = graphql(`query Usage($id: ID!, $from: DateTime!, $to: DateTime!, $granularity: Granularity!, $groupBy: String) {
  team(id: $id) { id usage(from: $from, to: $to, granularity: $granularity, groupBy: $groupBy) {
    total events buckets { start group amount events fromCredits invoiced } } } }`);

const RUNWAY = graphql(`query Runway($id: ID!) { team(id: $id) { id credits { total available held
  runway { dailyBurn daysLeft exhaustsAt creditsDaysLeft creditsExhaustAt } } } }`);

// Recent events tell which dimension keys this team sends (offered in the grouping menu).
const KEYS_SEEN = graphql(`query UsageKeys($id: ID!) { team(id: $id) { id usageRecords(first: 100) {
  edges { node { dimensions } } } } }`);

const EXPORT_URL = graphql(`query ExportUrl($id: ID!, $kind: ExportKind!, $from: DateTime!, $to: DateTime!) {
  team(id: $id) { id exportUrl(kind: $kind, from: $from, to: $to) } }`);

export type Granularity = "HOUR" | "DAY" | "MONTH";

interface Bucket {
  start: string;
  group: string | null;
  amount: string;
  events: number;
  fromCredits: string;
  invoiced: string;
}

interface Series {
  buckets: Bucket[];
  total: string;
  events: number;
}

interface Runway {
  dailyBurn: string;
  /** Until the credits and then the invoiced headroom are used. */
  daysLeft: number | null;
  exhaustsAt: string | null;
  /** Until the credits alone are used. */
  creditsDaysLeft?: number | null;
  creditsExhaustAt?: string | null;
}

// ------------------------------------------------------------------------ money

const UNIT = 100_000_000n;

/** Units of 1e-8 USD back to a decimal string ("-0.00001234"). */
export function unitsToDecimal(units: bigint): string {
  const negative = units < 0n;
  const size = negative ? -units : units;
  const fraction = (size % UNIT).toString().padStart(8, "0");
  return `${negative ? "-" : ""}${size / UNIT}.${fraction}`;
}

function sum(values: string[]): string {
  return unitsToDecimal(values.reduce((total, value) => total + toUnits(value), 0n));
}

// ------------------------------------------------------------------------ ranges

export type Preset = "7d" | "30d" | "90d" | "month" | "last-month" | "custom";

export const PRESETS: [Preset, string][] = [
  ["7d", "Last 7 days"],
  ["30d", "Last 30 days"],
  ["90d", "Last 90 days"],
  ["month", "This month"],
  ["last-month", "Last month"],
  ["custom", "Custom"],
];

export interface RangeChoice {
  preset: Preset;
  /** Custom range, "YYYY-MM-DD" UTC days, both included. */
  fromDay: string;
  toDay: string;
}

export interface Range {
  from: Date;
  /** Exclusive. */
  to: Date;
}

const DAY_MS = 86_400_000;

function utcMidnight(date: Date): Date {
  return new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate()));
}

export function dayString(date: Date): string {
  return date.toISOString().slice(0, 10);
}

/** The [from, to) instants of a choice, or a sentence saying what is wrong with it. */
export function resolveRange(choice: RangeChoice, now: Date = new Date()): Range | string {
  const tomorrow = new Date(utcMidnight(now).getTime() + DAY_MS);
  const lastDays = (days: number): Range => ({ from: new Date(tomorrow.getTime() - days * DAY_MS), to: tomorrow });
  switch (choice.preset) {
    case "7d":
      return lastDays(7);
    case "30d":
      return lastDays(30);
    case "90d":
      return lastDays(90);
    case "month":
      return {
        from: new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)),
        to: new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1)),
      };
    case "last-month":
      return {
        from: new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1)),
        to: new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)),
      };
    default: {
      const valid = /^\d{4}-\d{2}-\d{2}$/;
      if (!valid.test(choice.fromDay) || !valid.test(choice.toDay)) return "Choose a start and an end date.";
      const from = new Date(`${choice.fromDay}T00:00:00Z`);
      const last = new Date(`${choice.toDay}T00:00:00Z`);
      if (Number.isNaN(from.getTime()) || Number.isNaN(last.getTime())) return "Choose a start and an end date.";
      if (last < from) return "The end date must be on or after the start date.";
      if (last.getTime() - from.getTime() > 731 * DAY_MS) return "Choose at most two years.";
      return { from, to: new Date(last.getTime() + DAY_MS) };
    }
  }
}

const dayFormat = new Intl.DateTimeFormat("en-US", { month: "short", day: "numeric", year: "numeric", timeZone: "UTC" });

/** "Nov 5, 2026 – Dec 4, 2026 (UTC)", the end day included. */
export function describeRange(range: Range): string {
  const last = new Date(range.to.getTime() - 1);
  return `${dayFormat.format(range.from)} – ${dayFormat.format(last)} (UTC)`;
}

/** The range choice kept in the address (?range=&from=&to=), so a reload or a shared link shows the same. */
export function readRangeFromUrl(fallback: Preset): RangeChoice {
  const params = new URLSearchParams(location.search);
  const preset = params.get("range") as Preset | null;
  const known = PRESETS.some(([value]) => value === preset);
  return {
    preset: known && preset ? preset : fallback,
    fromDay: params.get("from") ?? "",
    toDay: params.get("to") ?? "",
  };
}

export function writeUrl(values: Record<string, string | null>): void {
  const params = new URLSearchParams(location.search);
  for (const [key, value] of Object.entries(values)) {
    if (value) params.set(key, value);
    else params.delete(key);
  }
  const search = params.toString();
  history.replaceState(history.state, "", `${location.pathname}${search ? `?${search}` : ""}`);
}

export function RangePicker(props: {
  choice: RangeChoice;
  onChange: (choice: RangeChoice) => void;
  problem: string | null;
}): JSX.Element {
  const { choice } = props;
  const today = dayString(new Date());
  return (
    <div class="range-picker" data-testid="range-picker">
      <div class="range-fields">
      <label class="field">
        <span class="field-label">Date range</span>
        <select
          data-testid="range-preset"
          value={choice.preset}
          onChange={(event) => {
            const preset = event.currentTarget.value as Preset;
            if (preset === "custom" && !choice.fromDay) {
              // Start the custom range where the chosen preset was.
              const current = resolveRange(choice);
              if (typeof current !== "string") {
                props.onChange({
                  preset,
                  fromDay: dayString(current.from),
                  toDay: dayString(new Date(current.to.getTime() - DAY_MS)),
                });
                return;
              }
            }
            props.onChange({ ...choice, preset });
          }}
        >
          {PRESETS.map(([value, label]) => (
            <option key={value} value={value}>
              {label}
            </option>
          ))}
        </select>
      </label>
      {choice.preset === "custom" && (
        <>
          <label class="field">
            <span class="field-label">From (UTC)</span>
            <input
              type="date"
              data-testid="range-from"
              value={choice.fromDay}
              max={today}
              onChange={(event) => props.onChange({ ...choice, fromDay: event.currentTarget.value })}
            />
          </label>
          <label class="field">
            <span class="field-label">To (UTC, included)</span>
            <input
              type="date"
              data-testid="range-to"
              value={choice.toDay}
              onChange={(event) => props.onChange({ ...choice, toDay: event.currentTarget.value })}
            />
          </label>
        </>
      )}
      </div>
      {props.problem && (
        <span class="field-error range-problem" role="alert" data-testid="range-error">
          {props.problem}
        </span>
      )}
    </div>
  );
}

// ------------------------------------------------------------------------ export

/** Asks for a signed CSV link, then lets the browser download it (same tab, no navigation). */
export async function downloadExport(teamId: string, kind: "USAGE" | "LEDGER", range: Range): Promise<void> {
  const data = await gql(EXPORT_URL, {
    id: teamId,
    kind,
    from: range.from.toISOString(),
    to: range.to.toISOString(),
  });
  const url = data.team?.exportUrl;
  if (!url) throw new Error("The export link could not be made. Retry in a moment.");
  const link = document.createElement("a");
  link.href = url;
  link.download = `${kind === "USAGE" ? "usage" : "statement"}-${dayString(range.from)}-to-${dayString(
    new Date(range.to.getTime() - DAY_MS),
  )}.csv`;
  link.rel = "noopener";
  document.body.appendChild(link);
  link.click();
  link.remove();
}

export function ExportButton(props: {
  teamId: string;
  kind: "USAGE" | "LEDGER";
  range: Range | null;
  testid: string;
}): JSX.Element {
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<string | null>(null);
  const run = (): void => {
    if (!props.range) return;
    setBusy(true);
    setFailure(null);
    downloadExport(props.teamId, props.kind, props.range)
      .catch((caught: Error) => setFailure(caught.message))
      .finally(() => setBusy(false));
  };
  return (
    <div class="export">
      <Button kind="secondary" small type="button" busy={busy} disabled={!props.range} onClick={run} testid={props.testid}>
        Download CSV
      </Button>
      {failure && (
        <span class="field-error" role="alert" data-testid={`${props.testid}-error`}>
          {failure}
        </span>
      )}
    </div>
  );
}

// ------------------------------------------------------------------------ buckets

const HOURLY_MAX_DAYS = 31;

const GRANULARITIES: [Granularity, string][] = [
  ["HOUR", "Hour"],
  ["DAY", "Day"],
  ["MONTH", "Month"],
];

/** The start of the bucket holding `date` (UTC). */
function truncate(date: Date, granularity: Granularity): Date {
  const y = date.getUTCFullYear();
  const m = date.getUTCMonth();
  if (granularity === "MONTH") return new Date(Date.UTC(y, m, 1));
  if (granularity === "DAY") return new Date(Date.UTC(y, m, date.getUTCDate()));
  return new Date(Date.UTC(y, m, date.getUTCDate(), date.getUTCHours()));
}

function next(date: Date, granularity: Granularity): Date {
  if (granularity === "MONTH") return new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1));
  return new Date(date.getTime() + (granularity === "DAY" ? DAY_MS : 3_600_000));
}

/** Every bucket start in [from, to), so days without usage show as gaps. */
function axis(range: Range, granularity: Granularity): Date[] {
  const starts: Date[] = [];
  for (let at = truncate(range.from, granularity); at < range.to && starts.length < 5000; at = next(at, granularity)) {
    starts.push(at);
  }
  return starts;
}

const hourFormat = new Intl.DateTimeFormat("en-US", {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  hourCycle: "h23",
  timeZone: "UTC",
});
const monthFormat = new Intl.DateTimeFormat("en-US", { month: "long", year: "numeric", timeZone: "UTC" });

export function bucketLabel(start: Date, granularity: Granularity): string {
  if (granularity === "MONTH") return monthFormat.format(start);
  if (granularity === "DAY") return dayFormat.format(start);
  return hourFormat.format(start);
}

const NO_GROUP = "(none)";
const CHART_GROUPS = 8; // the rest are drawn together as "Other"; the table lists every group

function groupName(group: string | null, groupBy: string | null): string {
  if (!groupBy) return "Usage";
  if (group === null || group === "") return groupBy === "description" ? "(no description)" : NO_GROUP;
  return group;
}

interface Shaped {
  starts: Date[];
  /** The same starts in seconds, for the chart (one array per answer, so it redraws once). */
  xs: number[];
  chart: StackedSeries[];
  totals: { amount: string; fromCredits: string; invoiced: string; events: number };
  groups: { name: string; amount: string; fromCredits: string; invoiced: string; events: number }[];
  rows: (Bucket & { name: string; startDate: Date })[];
  perBucket: string[];
}

/** Fills the time axis, sums per group and per bucket in exact units, picks the chart's groups. */
function shape(series: Series, range: Range, granularity: Granularity, groupBy: string | null): Shaped {
  const starts = axis(range, granularity);
  const slot = new Map(starts.map((start, index) => [start.getTime(), index]));
  const byGroup = new Map<string, { amount: bigint; fromCredits: bigint; invoiced: bigint; events: number; perSlot: bigint[] }>();
  const perBucket = starts.map(() => 0n);
  const rows: Shaped["rows"] = [];
  for (const bucket of series.buckets) {
    const startDate = new Date(bucket.start);
    const index = slot.get(truncate(startDate, granularity).getTime());
    const name = groupName(bucket.group, groupBy);
    const amount = toUnits(bucket.amount);
    let entry = byGroup.get(name);
    if (!entry) {
      entry = { amount: 0n, fromCredits: 0n, invoiced: 0n, events: 0, perSlot: starts.map(() => 0n) };
      byGroup.set(name, entry);
    }
    entry.amount += amount;
    entry.fromCredits += toUnits(bucket.fromCredits);
    entry.invoiced += toUnits(bucket.invoiced);
    entry.events += bucket.events;
    if (index !== undefined) {
      entry.perSlot[index] += amount;
      perBucket[index] += amount;
    }
    // The API sends empty buckets too (ungrouped); the chart has its own axis, the table skips them.
    if (bucket.events > 0 || amount !== 0n) rows.push({ ...bucket, name, startDate });
  }
  rows.sort((a, b) => a.startDate.getTime() - b.startDate.getTime() || a.name.localeCompare(b.name));
  const groups = [...byGroup.entries()]
    .sort(([, a], [, b]) => (b.amount > a.amount ? 1 : b.amount < a.amount ? -1 : 0))
    .map(([name, entry]) => ({
      name,
      amount: unitsToDecimal(entry.amount),
      fromCredits: unitsToDecimal(entry.fromCredits),
      invoiced: unitsToDecimal(entry.invoiced),
      events: entry.events,
      perSlot: entry.perSlot,
    }));
  const drawn = groups.slice(0, CHART_GROUPS);
  const rest = groups.slice(CHART_GROUPS);
  if (rest.length) {
    drawn.push({
      name: "Other",
      amount: "0",
      fromCredits: "0",
      invoiced: "0",
      events: 0,
      perSlot: starts.map((_, index) => rest.reduce((total, group) => total + group.perSlot[index], 0n)),
    });
  }
  // Largest group at the bottom of each stack.
  const chart = drawn.map((group) => ({
    label: group.name,
    // Dollars as floats for bar heights only.
    values: group.perSlot.map((units) => Number(units) / 1e8),
    texts: group.perSlot.map((units) => formatUsdExact(unitsToDecimal(units))),
  }));
  const totals = {
    amount: series.total,
    fromCredits: sum(series.buckets.map((bucket) => bucket.fromCredits)),
    invoiced: sum(series.buckets.map((bucket) => bucket.invoiced)),
    events: series.events,
  };
  return {
    starts,
    xs: starts.map((start) => start.getTime() / 1000),
    chart,
    totals,
    groups: groups.map(({ perSlot: _perSlot, ...group }) => group),
    rows,
    perBucket: perBucket.map((units) => unitsToDecimal(units)),
  };
}

// ------------------------------------------------------------------------ the page

interface Settings {
  granularity: Granularity;
  /** null: no grouping; "description"; or a dimension key. */
  groupBy: string | null;
}

function readSettings(): Settings {
  const params = new URLSearchParams(location.search);
  const granularity = params.get("granularity");
  return {
    granularity: granularity === "HOUR" || granularity === "MONTH" ? granularity : "DAY",
    groupBy: params.get("groupBy") || null,
  };
}

export function UsagePage(props: PageProps): JSX.Element {
  const [choice, setChoice] = useState<RangeChoice>(() => readRangeFromUrl("30d"));
  const [settings, setSettings] = useState<Settings>(readSettings);
  const resolved = useMemo(() => resolveRange(choice), [choice.preset, choice.fromDay, choice.toDay]);
  const range = typeof resolved === "string" ? null : resolved;
  // The API answers at most 2,000 buckets: hours are offered for a month at most.
  const hoursAllowed = range !== null && range.to.getTime() - range.from.getTime() <= HOURLY_MAX_DAYS * DAY_MS;
  const granularity: Granularity = settings.granularity === "HOUR" && !hoursAllowed ? "DAY" : settings.granularity;

  useEffect(() => {
    writeUrl({
      range: choice.preset === "30d" ? null : choice.preset, // the default stays out of the address
      from: choice.preset === "custom" ? choice.fromDay : null,
      to: choice.preset === "custom" ? choice.toDay : null,
      granularity: settings.granularity === "DAY" ? null : settings.granularity,
      groupBy: settings.groupBy,
    });
  }, [choice, settings]);

  return (
    <div class="stack-page usage-page" data-testid="usage-page">
      <RunwayCard teamId={props.teamId} />
      <Card
        title="Usage"
        subtitle={range ? describeRange(range) : "Dates and times are UTC."}
        actions={<ExportButton teamId={props.teamId} kind="USAGE" range={range} testid="usage-export" />}
        testid="usage-card"
      >
        <div class="usage-controls">
          <RangePicker choice={choice} onChange={setChoice} problem={typeof resolved === "string" ? resolved : null} />
          <div class="field">
            <span class="field-label" id="granularity-label">
              Per
            </span>
            <div class="segmented" role="group" aria-labelledby="granularity-label" data-testid="granularity">
              {GRANULARITIES.map(([value, label]) => (
                <button
                  key={value}
                  type="button"
                  class={granularity === value ? "segment segment-on" : "segment"}
                  aria-pressed={granularity === value}
                  disabled={value === "HOUR" && !hoursAllowed}
                  title={value === "HOUR" && !hoursAllowed ? `Hourly for ranges up to ${HOURLY_MAX_DAYS} days` : undefined}
                  onClick={() => setSettings({ ...settings, granularity: value })}
                  data-testid={`granularity-${value.toLowerCase()}`}
                >
                  {label}
                </button>
              ))}
            </div>
          </div>
          <GroupPicker
            teamId={props.teamId}
            value={settings.groupBy}
            onChange={(groupBy) => setSettings({ ...settings, groupBy })}
          />
        </div>
        {range ? (
          <UsageView teamId={props.teamId} range={range} granularity={granularity} groupBy={settings.groupBy} />
        ) : (
          <EmptyState title="Choose a date range">Pick a preset or both days of a custom range.</EmptyState>
        )}
      </Card>
    </div>
  );
}

const KEY_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

function GroupPicker(props: { teamId: string; value: string | null; onChange: (value: string | null) => void }): JSX.Element {
  const seen = useQuery(KEYS_SEEN, {
    id: props.teamId,
  });
  const keys = useMemo(() => {
    const found = new Set<string>();
    for (const edge of seen.data?.team?.usageRecords.edges ?? []) {
      const dimensions = edge.node.dimensions;
      if (dimensions && typeof dimensions === "object" && !Array.isArray(dimensions)) {
        Object.keys(dimensions).forEach((key) => found.add(key));
      }
    }
    return [...found].sort();
  }, [seen.data]);
  const isCustom = props.value !== null && props.value !== "description" && !keys.includes(props.value);
  const [typing, setTyping] = useState<boolean>(isCustom);
  const [draft, setDraft] = useState(isCustom ? (props.value ?? "") : "");
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    // A key from the address shows as typed until the keys seen arrive; then pick it.
    if (typing && props.value !== null && keys.includes(props.value) && draft === props.value) setTyping(false);
  }, [keys]);
  const selectValue = typing ? "__other" : props.value === null ? "" : props.value === "description" ? "description" : `key:${props.value}`;
  const apply = (event: Event): void => {
    event.preventDefault();
    const key = draft.trim();
    if (!KEY_PATTERN.test(key)) {
      setProblem("A dimension key is 1 to 64 letters, digits, '_', '.' or '-'.");
      return;
    }
    setProblem(null);
    props.onChange(key);
  };
  return (
    <div class="group-picker">
      <label class="field">
        <span class="field-label">Group by</span>
        <select
          data-testid="group-by"
          value={selectValue}
          onChange={(event) => {
            const value = event.currentTarget.value;
            setProblem(null);
            if (value === "__other") {
              setTyping(true);
              return;
            }
            setTyping(false);
            props.onChange(value === "" ? null : value === "description" ? "description" : value.slice(4));
          }}
        >
          <option value="">Nothing (total)</option>
          <option value="description">Description</option>
          {keys.length > 0 && (
            <optgroup label="Dimension keys seen">
              {keys.map((key) => (
                <option key={key} value={`key:${key}`}>
                  {key}
                </option>
              ))}
            </optgroup>
          )}
          {isCustom && !typing && <option value={`key:${props.value}`}>{props.value}</option>}
          <option value="__other">Another key…</option>
        </select>
      </label>
      {typing && (
        <form class="group-key" onSubmit={apply}>
          <label class="field">
            <span class="field-label">Dimension key</span>
            <input
              data-testid="group-key"
              value={draft}
              placeholder="e.g. model"
              maxLength={64}
              onInput={(event) => setDraft(event.currentTarget.value)}
              aria-invalid={problem ? "true" : "false"}
            />
          </label>
          <Button small kind="secondary" testid="group-key-apply">
            Apply
          </Button>
          {problem && (
            <span class="field-error" role="alert" data-testid="group-key-error">
              {problem}
            </span>
          )}
        </form>
      )}
    </div>
  );
}

function UsageView(props: { teamId: string; range: Range; granularity: Granularity; groupBy: string | null }): JSX.Element {
  const state = useQuery(USAGE, {
    id: props.teamId,
    from: props.range.from.toISOString(),
    to: props.range.to.toISOString(),
    granularity: props.granularity,
    groupBy: props.groupBy,
  });
  const series = state.data?.team?.usage ?? null;
  const shaped = useMemo(
    () => (series ? shape(series, props.range, props.granularity, props.groupBy) : null),
    [series],
  );
  if (state.error) return <ErrorState error={state.error} retry={state.reload} />;
  if (!shaped || !series) return <Skeleton lines={6} height={18} />;
  const busy = state.loading ? "true" : "false";
  if (series.events === 0) {
    return (
      <div aria-busy={busy} data-testid="usage-result" data-total={series.total} data-events={series.events}>
        <EmptyState title="No usage in this range" icon={<IconClock />}>
          Nothing was recorded between {describeRange(props.range).replace(" (UTC)", "")} (UTC). Choose a longer range, or
          check that the gateway sends usage for this team.
        </EmptyState>
      </div>
    );
  }
  const grouped = props.groupBy !== null;
  return (
    <div class="usage-result" aria-busy={busy} data-testid="usage-result" data-total={series.total} data-events={series.events}>
      <div class="tiles usage-tiles" data-testid="usage-totals">
        <Tile label="Total" value={shaped.totals.amount} testid="usage-total" />
        <Tile label="From credits" value={shaped.totals.fromCredits} testid="usage-from-credits" />
        <Tile label="Invoiced" value={shaped.totals.invoiced} testid="usage-invoiced" />
        <div class="tile">
          <div class="tile-label">Events</div>
          <div class="tile-value" data-testid="usage-events">
            {shaped.totals.events.toLocaleString("en-US")}
          </div>
        </div>
      </div>
      <figure class="usage-figure">
        <StackedBars
          xs={shaped.xs}
          series={shaped.chart}
          testid="usage-chart"
          xLabel={(index) => bucketLabel(shaped.starts[index], props.granularity)}
          totalText={(index) => `${formatUsdExact(shaped.perBucket[index])} in total`}
        />
        <figcaption class="muted small">
          Spend per {props.granularity.toLowerCase()} (UTC){grouped ? `, stacked by ${props.groupBy}` : ""}. The table below
          lists the same numbers.
        </figcaption>
      </figure>
      {grouped && <GroupTable groups={shaped.groups} groupBy={props.groupBy as string} total={shaped.totals} />}
      <BucketTable rows={shaped.rows} granularity={props.granularity} grouped={grouped} totals={shaped.totals} />
    </div>
  );
}

function Tile(props: { label: string; value: string; testid: string }): JSX.Element {
  return (
    <div class="tile">
      <div class="tile-label">{props.label}</div>
      <div class="tile-value" data-testid={props.testid} data-value={props.value} title={formatUsdExact(props.value)}>
        {formatUsd(props.value)}
      </div>
    </div>
  );
}

function Money(props: { value: string }): JSX.Element {
  return (
    <span title={formatUsdExact(props.value)} data-value={props.value}>
      {formatUsd(props.value)}
    </span>
  );
}

function GroupTable(props: { groups: Shaped["groups"]; groupBy: string; total: Shaped["totals"] }): JSX.Element {
  return (
    <div class="table-scroll" tabIndex={0} role="region" aria-label={`Usage by ${props.groupBy}`}>
      <table class="table" data-testid="usage-groups">
        <caption class="table-caption">Usage by {props.groupBy}, largest first</caption>
        <thead>
          <tr>
            <th scope="col">{props.groupBy === "description" ? "Description" : props.groupBy}</th>
            <th scope="col" class="num">Events</th>
            <th scope="col" class="num">From credits</th>
            <th scope="col" class="num">Invoiced</th>
            <th scope="col" class="num">Amount</th>
          </tr>
        </thead>
        <tbody>
          {props.groups.map((group) => (
            <tr key={group.name} data-testid="usage-group-row" data-group={group.name}>
              <th scope="row" class="cell-text">{group.name}</th>
              <td class="num">{group.events.toLocaleString("en-US")}</td>
              <td class="num"><Money value={group.fromCredits} /></td>
              <td class="num"><Money value={group.invoiced} /></td>
              <td class="num" data-testid="usage-group-amount"><Money value={group.amount} /></td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function BucketTable(props: {
  rows: Shaped["rows"];
  granularity: Granularity;
  grouped: boolean;
  totals: Shaped["totals"];
}): JSX.Element {
  return (
    <>
    <p class="table-note">Oldest first; periods without usage are left out.</p>
    <div class="table-scroll" tabIndex={0} role="region" aria-label="Usage per period">
      <table class="table" data-testid="usage-table">
        <caption class="table-caption">Usage per {props.granularity.toLowerCase()} (UTC)</caption>
        <thead>
          <tr>
            <th scope="col">{props.granularity === "HOUR" ? "Hour" : props.granularity === "DAY" ? "Day" : "Month"}</th>
            {props.grouped && <th scope="col">Group</th>}
            <th scope="col" class="num">Events</th>
            <th scope="col" class="num">From credits</th>
            <th scope="col" class="num">Invoiced</th>
            <th scope="col" class="num">Amount</th>
          </tr>
        </thead>
        <tbody>
          {props.rows.map((row) => (
            <tr key={`${row.start}|${row.name}`} data-testid="usage-row" data-start={row.start} data-group={row.name}>
              <th scope="row" class="cell-nowrap">{bucketLabel(row.startDate, props.granularity)}</th>
              {props.grouped && <td class="cell-text">{row.name}</td>}
              <td class="num">{row.events.toLocaleString("en-US")}</td>
              <td class="num"><Money value={row.fromCredits} /></td>
              <td class="num"><Money value={row.invoiced} /></td>
              <td class="num" data-testid="usage-row-amount"><Money value={row.amount} /></td>
            </tr>
          ))}
        </tbody>
        <tfoot>
          <tr class="table-total">
            <th scope="row">Total</th>
            {props.grouped && <td />}
            <td class="num">{props.totals.events.toLocaleString("en-US")}</td>
            <td class="num"><Money value={props.totals.fromCredits} /></td>
            <td class="num"><Money value={props.totals.invoiced} /></td>
            <td class="num"><Money value={props.totals.amount} /></td>
          </tr>
        </tfoot>
      </table>
    </div>
    </>
  );
}

// ------------------------------------------------------------------------ runway

const untilFormat = new Intl.DateTimeFormat("en-US", { month: "short", day: "numeric", year: "numeric", timeZone: "UTC" });

function span(days: number): string {
  if (days < 1) return "less than a day";
  const rounded = Math.round(days);
  return `about ${rounded} ${rounded === 1 ? "day" : "days"}`;
}

function until(at: string | null): string {
  return at ? `, until ${untilFormat.format(new Date(at))} (UTC)` : "";
}

/**
 * The runway in words: "At $12.34/day, credits last about 9 days, until Dec 14, 2026 (UTC)."
 * then, when an invoiced limit stretches it, how long spending can go on after that.
 */
export function runwaySentence(runway: Runway, total: string): string {
  const burn = toUnits(runway.dailyBurn);
  const rate = formatUsd(runway.dailyBurn);
  // Older servers send only daysLeft (credits and invoiced headroom together).
  const creditsDays = runway.creditsDaysLeft === undefined ? runway.daysLeft : runway.creditsDaysLeft;
  const creditsAt = runway.creditsExhaustAt === undefined ? runway.exhaustsAt : runway.creditsExhaustAt;
  if (burn <= 0n || runway.daysLeft === null) {
    return toUnits(total) > 0n
      ? "Nothing was used in the last 7 days, so at this pace the credits do not run out."
      : "There are no credits left, and nothing was used in the last 7 days.";
  }
  const afterCredits =
    runway.creditsDaysLeft !== undefined && runway.daysLeft > (creditsDays ?? 0) + 0.5
      ? ` With the invoiced spending limit, usage can go on for ${span(runway.daysLeft)}${until(runway.exhaustsAt)}.`
      : "";
  if (toUnits(total) <= 0n || creditsDays === null || creditsDays <= 0) {
    return `Credits are used up; usage in the last 7 days averaged ${rate}/day.${afterCredits}`;
  }
  return `At ${rate}/day, credits last ${span(creditsDays)}${until(creditsAt)}.${afterCredits}`;
}

function RunwayCard(props: { teamId: string }): JSX.Element {
  const state = useQuery(
    RUNWAY,
    { id: props.teamId },
  );
  return (
    <Card title="Runway" subtitle="At the average daily usage of the last 7 days." testid="runway">
      <Loadable state={state} skeleton={<Skeleton lines={1} height={20} />}>
        {(data) => {
          const credits = data.team?.credits;
          if (!credits) return <EmptyState title="No credits on this team" />;
          return (
            <div class="runway">
              <p class="runway-sentence" data-testid="runway-sentence" data-burn={credits.runway.dailyBurn}>
                {runwaySentence(credits.runway, credits.total)}
              </p>
              <p class="muted small">
                Balance <Money value={credits.total} />
                {toUnits(credits.held) > 0n && (
                  <>
                    {" "}· held for requests in progress <Money value={credits.held} />
                  </>
                )}
                {" "}· available to spend <Money value={credits.available} />
              </p>
            </div>
          );
        }}
      </Loadable>
    </Card>
  );
}
