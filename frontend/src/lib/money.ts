// Money on screen: the API sends US dollars as decimal strings ("12.5", "0.00001234").
// They are formatted as strings and compared as BigInt units of 1e-8 USD: never floats.

const SCALE = 8;

/** "12.34" -> 1234000000n (units of 1e-8 USD). Throws on anything but a plain decimal. */
export function toUnits(value: string): bigint {
  const match = /^(-?)(\d+)(?:\.(\d{1,8}))?$/.exec(value.trim());
  if (!match) throw new Error(`not a decimal: ${value}`);
  const [, sign, whole, fraction = ""] = match;
  const units = BigInt(whole) * 10n ** BigInt(SCALE) + BigInt(fraction.padEnd(SCALE, "0"));
  return sign ? -units : units;
}

/** "1234.5" -> "$1,234.50"; keeps every significant decimal up to 8 ("$0.00001234"). */
export function formatUsd(value: string | null | undefined): string {
  if (value == null || value === "") return "—";
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(value.trim());
  if (!match) return value;
  const [, sign, whole, rawFraction = ""] = match;
  let fraction = rawFraction.replace(/0+$/, "");
  if (fraction.length < 2) fraction = fraction.padEnd(2, "0");
  const grouped = whole.replace(/^0+(?=\d)/, "").replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${sign}$${grouped}.${fraction}`;
}

/** Share of `part` in `whole` as a percentage for bars (display only), clamped to 0..100. */
export function percentOf(part: string, whole: string): number {
  const total = toUnits(whole);
  if (total <= 0n) return 0;
  const per_mille = (toUnits(part) * 1000n) / total;
  const clamped = per_mille < 0n ? 0n : per_mille > 1000n ? 1000n : per_mille;
  return Number(clamped) / 10;
}
