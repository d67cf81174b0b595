// Dates on screen, for the console and the widget: always UTC (billing months are UTC
// months), month names in words, and billing periods shown with their last day.

const DAY_MS = 86_400_000;

function parse(value: string | null | undefined): Date | null {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** "Dec 1, 2026", or "Dec 1, 2026, 09:30 UTC" with the time. */
export function formatDate(value: string | null | undefined, withTime = false): string {
  const date = parse(value);
  if (!date) return "—";
  const text = date.toLocaleString("en-US", {
    year: "numeric",
    month: "short",
    day: "numeric",
    ...(withTime ? { hour: "2-digit", minute: "2-digit", hourCycle: "h23" } : {}),
    timeZone: "UTC",
  });
  return withTime ? `${text} UTC` : text;
}

/**
 * A billing period from the API's [start, end) pair, with the inclusive last day a person
 * expects: Dec 1 – Jan 1 (exclusive) reads "Dec 1 – Dec 31, 2026"; a whole calendar month
 * reads "December 2026".
 */
export function formatPeriod(start: string | null | undefined, end: string | null | undefined): string {
  const from = parse(start);
  const until = parse(end);
  if (!from || !until) return formatDate(start);
  const last = new Date(Math.max(from.getTime(), until.getTime() - DAY_MS));
  const wholeMonth =
    from.getUTCDate() === 1 &&
    from.getUTCHours() === 0 &&
    until.getUTCDate() === 1 &&
    until.getUTCHours() === 0 &&
    (until.getUTCMonth() - from.getUTCMonth() + 12) % 12 === 1;
  if (wholeMonth) return from.toLocaleString("en-US", { month: "long", year: "numeric", timeZone: "UTC" });
  const sameYear = from.getUTCFullYear() === last.getUTCFullYear();
  const head = from.toLocaleString("en-US", {
    month: "short",
    day: "numeric",
    ...(sameYear ? {} : { year: "numeric" }),
    timeZone: "UTC",
  });
  return `${head} – ${formatDate(last.toISOString())}`;
}
