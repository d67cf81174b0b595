// A stacked bar chart over time (uPlot), sized to its container, with its own legend and
// a hover readout. The chart is a picture: the numbers a screen reader needs are in the
// table the page puts beside it, so the canvas is hidden from assistive technology.

import type { JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface StackedSeries {
  label: string;
  /** One value per x, in dollars; display only (the exact sums are in the table). */
  values: number[];
  /** Exact texts for the hover readout, one per x. */
  texts: string[];
}

export interface StackedBarsProps {
  /** Bucket starts, seconds since the epoch (UTC). */
  xs: number[];
  /** Bottom of the stack first. */
  series: StackedSeries[];
  /** Label of one bucket for the hover readout ("Dec 4, 2026"). */
  xLabel: (index: number) => string;
  /** Text of one bucket's total for the hover readout. */
  totalText: (index: number) => string;
  height?: number;
  testid?: string;
}

// Distinct in hue and in lightness (readable for common colour-vision deficiencies);
// the last one, grey, is kept for "Other".
export const PALETTE = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0ea5e9", "#ec4899", "#84cc16"];
export const OTHER_COLOUR = "#9ca3af";

export function seriesColour(index: number, label: string): string {
  return label === "Other" ? OTHER_COLOUR : PALETTE[index % PALETTE.length];
}

const money = (value: number): string =>
  value >= 1000 ? `$${(value / 1000).toFixed(value >= 10_000 ? 0 : 1)}k` : value >= 1 || value === 0 ? `$${value.toFixed(value >= 100 ? 0 : 2)}` : `$${value.toPrecision(2)}`;

export function StackedBars(props: StackedBarsProps): JSX.Element {
  const holder = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const [hover, setHover] = useState<number | null>(null);

  useEffect(() => {
    const target = holder.current;
    if (!target) return undefined;
    const { xs, series } = props;
    // uPlot has no stacking: each drawn series is the running sum from the bottom, and the
    // tallest is drawn first so each lower part paints over it.
    const stacked: number[][] = [];
    let running = xs.map(() => 0);
    for (const one of series) {
      running = running.map((sum, index) => sum + (one.values[index] ?? 0));
      stacked.push(running);
    }
    const drawOrder = series.map((_, index) => index).reverse();
    const step = xs.length > 1 ? xs[1] - xs[0] : 86_400;
    const bars = uPlot.paths.bars?.({ size: [0.72, 64], align: 0 });
    const options: uPlot.Options = {
      width: Math.max(target.clientWidth, 200),
      height: props.height ?? 260,
      legend: { show: false },
      cursor: { points: { show: false }, drag: { x: false, y: false } },
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      scales: {
        x: {
          time: true,
          range: () => [(xs[0] ?? 0) - step / 2, (xs[xs.length - 1] ?? 0) + step / 2],
        },
        y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.08 : 1] },
      },
      axes: [
        { stroke: "#6b7280", grid: { show: false }, ticks: { stroke: "#e6e7ea" } },
        {
          stroke: "#6b7280",
          grid: { stroke: "#eef0f3" },
          ticks: { show: false },
          size: 56,
          values: (_u, ticks) => ticks.map(money),
        },
      ],
      series: [
        {},
        ...drawOrder.map((index) => ({
          label: series[index].label,
          fill: seriesColour(index, series[index].label),
          stroke: seriesColour(index, series[index].label),
          width: 0,
          paths: bars,
          points: { show: false },
        })),
      ],
      hooks: {
        setCursor: [(u) => setHover(u.cursor.idx ?? null)],
      },
    };
    const data: uPlot.AlignedData = [xs, ...drawOrder.map((index) => stacked[index])];
    const chart = new uPlot(options, data, target);
    plot.current = chart;
    const observer = new ResizeObserver(() => {
      const width = Math.max(target.clientWidth, 200);
      if (width !== chart.width) chart.setSize({ width, height: chart.height });
    });
    observer.observe(target);
    return () => {
      observer.disconnect();
      chart.destroy();
      plot.current = null;
    };
  }, [props.xs, props.series]);

  const shown = hover ?? null;
  return (
    <div class="chart" data-testid={props.testid}>
      <div class="chart-canvas" ref={holder} aria-hidden="true" />
      <div class="chart-readout" aria-hidden="true" data-testid="chart-readout">
        {shown === null ? (
          <span class="muted small">Point at a bar to see its numbers.</span>
        ) : (
          <>
            <strong>{props.xLabel(shown)}</strong> <span class="muted">·</span> {props.totalText(shown)}
          </>
        )}
      </div>
      <ul class="chart-legend" aria-hidden="true">
        {props.series.map((one, index) => (
          <li key={one.label} data-testid="chart-legend-item">
            <span class="chart-swatch" style={{ background: seriesColour(index, one.label) }} />
            {one.label}
            {shown !== null && <span class="muted"> {one.texts[shown]}</span>}
          </li>
        ))}
      </ul>
    </div>
  );
}

// Navigation icons for the Usage and Statement pages (same 24px stroke style as ui.tsx).
const navIcon = (path: JSX.Element): JSX.Element => (
  <svg viewBox="0 0 24 24" width="20" height="20" fill="none" stroke="currentColor" stroke-width="1.8"
    stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">
    {path}
  </svg>
);
export const IconChart = (): JSX.Element => navIcon(<path d="M4 20h16M7 16v-5M12 16V7M17 16v-8" />);
export const IconList = (): JSX.Element => navIcon(<path d="M8 7h12M8 12h12M8 17h12M4 7h.5M4 12h.5M4 17h.5" />);
