// Health figures for display: history kept to the hour, sparkline paths, and readable sizes.
import type { Health, Sample } from "./types";

export const HOUR_MS = 3600_000;

/** The history after a new reading, without samples older than an hour. */
export function appendSample(history: Sample[], h: Health): Sample[] {
  const s: Sample = {
    at_ms: h.at_ms,
    rtt_ms: h.rtt_ms ?? null,
    engine_ms: h.engine?.ping_ms ?? null,
    load1: h.vm?.load[0] ?? null,
    mem_used: h.vm?.mem_used ?? null,
  };
  return [...history.filter((x) => x.at_ms >= h.at_ms - HOUR_MS && x.at_ms !== h.at_ms), s];
}

/** An SVG path through the non-null `values`, scaled into width × height (0 at the bottom). */
export function sparkline(values: (number | null | undefined)[], width: number, height: number): string {
  const pts = values.map((v, i) => [i, v] as const).filter((p): p is readonly [number, number] => typeof p[1] === "number");
  if (pts.length === 0) return "";
  const max = Math.max(...pts.map((p) => p[1]), 1e-9);
  const n = Math.max(values.length - 1, 1);
  return pts
    .map(([i, v], k) => `${k === 0 ? "M" : "L"}${((i / n) * width).toFixed(1)},${(height - (v / max) * height).toFixed(1)}`)
    .join(" ");
}

/** Bytes as people read them: 512 MB, 3.4 GB. */
export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "–";
  if (n >= 1e12) return `${(n / 1e12).toFixed(1)} TB`;
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} GB`;
  if (n >= 1e6) return `${Math.round(n / 1e6)} MB`;
  return `${Math.round(n / 1e3)} kB`;
}

/** Used share of a total, in percent (0 when unknown). */
export function percent(used: number, total: number): number {
  return total > 0 ? Math.round((used / total) * 100) : 0;
}
