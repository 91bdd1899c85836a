/**
 * The benchmarks' figures as table cells ('—' where there is none), and the per-round ratios and
 * medians the tables show: one home for run.ts, hub-sections.ts and redis-sections.ts alike.
 */
import { median } from './harness';

/** `value` with `digits` decimals. */
export const fixed = (value: number | undefined, digits: number) =>
  value === undefined || !Number.isFinite(value) ? '—' : value.toFixed(digits);
/** µs as ms, one decimal. */
export const ms = (us: number | undefined) => (us === undefined ? '—' : (us / 1000).toFixed(1));
/** A ratio: `1.23×`. */
export const times = (value: number | undefined) => (value === undefined ? '—' : `${value.toFixed(2)}×`);
/** The lowest and highest of some ratios: `0.91–1.07`. */
export const spread = (values: number[]) =>
  values.length > 0 ? `${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)}` : '—';
/** A whole number with thousands separators. */
export const thousands = (value: number | undefined) =>
  value === undefined || !Number.isFinite(value) ? '—' : Math.round(value).toLocaleString('en-US');
/** A whole difference with its sign: `+12`, `-3`. */
export const signed = (value: number | undefined) =>
  value === undefined ? '—' : `${value >= 0 ? '+' : ''}${Math.round(value)}`;

export const medianOf = (values: number[]) => (values.length > 0 ? median(values) : undefined);

/** Per-round ratios of `value` to the baseline's phase of the same round, where both rounds are sound. */
export function roundRatios<P extends { ok: boolean }>(
  phases: P[],
  base: P[],
  value: (phase: P) => number,
): number[] {
  const ratios: number[] = [];
  phases.forEach((phase, i) => {
    const basePhase = base[i];
    if (phase.ok && basePhase?.ok) ratios.push(value(phase) / value(basePhase));
  });
  return ratios;
}

export function okPhases<P extends { ok: boolean }>(phases: P[]): P[] {
  return phases.filter((phase) => phase.ok);
}

/** The median of a figure over phases, leaving out phases that do not have it. */
export function pick<P>(phases: P[], value: (phase: P) => number | undefined): number | undefined {
  return medianOf(phases.map(value).filter((v): v is number => v !== undefined && Number.isFinite(v)));
}
