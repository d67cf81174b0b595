// Money on screen: the API sends US dollars as decimal strings ("12.5", "0.00001234").
// They are formatted as strings and compared as BigInt units of 1e-8 USD: never floats.
//
// One rule for the console and the widget (the PDFs follow it too): amounts read as
// dollars and cents ("$57.88", rounded half up), and the exact value is one hover away
// (`formatUsdExact`, used as the title). See docs/console.md.

const SCALE = 8;
const PLAIN = /^(-?)(\d+)(?:\.(\d{1,8}))?$/;

/** "12.34" -> 1234000000n (units of 1e-8 USD). Throws on anything but a plain decimal. */
export function toUnits(value: string): bigint {
  const match = PLAIN.exec(value.trim());
  if (!match) throw new Error(`not a decimal: ${value}`);
  const [, sign, whole, fraction = ""] = match;
  const units = BigInt(whole) * 10n ** BigInt(SCALE) + BigInt(fraction.padEnd(SCALE, "0"));
  return sign ? -units : units;
}

function group(whole: bigint): string {
  return whole.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** "57.87654322" -> "$57.88": dollars and cents, rounded half up (away from zero). */
export function formatUsd(value: string | null | undefined): string {
  if (value == null || value === "") return "—";
  let units: bigint;
  try {
    units = toUnits(value);
  } catch {
    return "—";
  }
  const negative = units < 0n;
  const magnitude = negative ? -units : units;
  const cents = (magnitude + 500_000n) / 1_000_000n; // 1 cent = 10^6 units
  const text = `$${group(cents / 100n)}.${(cents % 100n).toString().padStart(2, "0")}`;
  return negative && cents > 0n ? `-${text}` : text;
}

/** "1234.5" -> "$1,234.50"; every significant decimal up to 8 ("$0.00001234"), for titles. */
export function formatUsdExact(value: string | null | undefined): string {
  if (value == null || value === "") return "—";
  const match = PLAIN.exec(value.trim());
  if (!match) return "—";
  const [, sign, whole, rawFraction = ""] = match;
  const fraction = rawFraction.replace(/0+$/, "").padEnd(2, "0");
  return `${sign}$${group(BigInt(whole))}.${fraction}`;
}

/** True when `formatUsd` drops digits of this value (so the exact one is worth a title). */
export function isRounded(value: string): boolean {
  return formatUsdExact(value).replace(/,/g, "") !== formatUsd(value).replace(/,/g, "");
}

/**
 * What a person typed in an amount box, checked before anything is sent: a plain
 * non-negative decimal with at most `places` decimals ("25", "25.5", "$1,000.00").
 * Returns the decimal string for the API, or null.
 */
export function parseAmount(text: string, places = 2): string | null {
  const cleaned = text.trim().replace(/^\$/, "").replace(/,(?=\d{3}(\D|$))/g, "");
  const match = /^(\d+)(?:\.(\d*))?$/.exec(cleaned);
  if (!match) return null;
  const [, whole, fraction = ""] = match;
  if (fraction.length > places || whole.length > 12) return null;
  return fraction ? `${whole}.${fraction}` : whole;
}

/** Share of `part` in `whole` as a percentage for bars (display only), clamped to 0..100. */
export function percentOf(part: string, whole: string): number {
  const total = toUnits(whole);
  if (total <= 0n) return 0;
  const per_mille = (toUnits(part) * 1000n) / total;
  const clamped = per_mille < 0n ? 0n : per_mille > 1000n ? 1000n : per_mille;
  return Number(clamped) / 10;
}
