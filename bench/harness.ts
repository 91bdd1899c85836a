/**
 * The benchmarks' plumbing: forked children spoken to by IPC (tracked, and killed however the run
 * ends), interleaved rounds, medians and per-round ratios, and the plain-text tables of the report.
 * Every wait has a time bound.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = fileURLToPath(new URL('.', import.meta.url));

export type Message = { type: string } & Record<string, unknown>;

const live = new Set<ChildProcess>();

export function killAll(): void {
  for (const child of live) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  live.clear();
}

let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      killAll();
      process.exit(130);
    });
  }
}

interface Waiter {
  match: (message: Message) => boolean;
  resolve: (message: Message) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/** One forked child (`node` on a .mjs file of children/, no tsx loader), spoken to by IPC messages. */
export class Child {
  readonly name: string;
  readonly #proc: ChildProcess;
  readonly #inbox: Message[] = [];
  readonly #waiters = new Set<Waiter>();
  #stderr = '';
  #exited: string | undefined;

  constructor(script: string, args: string[], name: string, env: Record<string, string> = {}) {
    hookExit();
    this.name = name;
    this.#proc = fork(`${BENCH_DIR}children/${script}`, args, {
      // gc() for heap readings and between phases
      execArgv: ['--expose-gc'],
      env: { ...process.env, ...env },
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      cwd: BENCH_DIR,
    });
    live.add(this.#proc);
    this.#proc.stderr?.setEncoding('utf8');
    this.#proc.stderr?.on('data', (text: string) => {
      this.#stderr = (this.#stderr + text).slice(-4000);
    });
    this.#proc.on('message', (message: Message) => this.#deliver(message));
    this.#proc.on('exit', (code, signal) => {
      live.delete(this.#proc);
      this.#exited = `${this.name} exited (code ${code}, signal ${signal})${this.#stderr ? `: ${this.#stderr.trim()}` : ''}`;
      for (const waiter of this.#waiters) {
        clearTimeout(waiter.timer);
        waiter.reject(new Error(this.#exited));
      }
      this.#waiters.clear();
    });
  }

  send(message: Message): void {
    if (this.#exited) throw new Error(this.#exited);
    this.#proc.send(message);
  }

  /** The next message of `type` (already received or to come), or an error after `timeoutMs`. */
  waitFor(
    type: string,
    timeoutMs: number,
    match: (message: Message) => boolean = () => true,
  ): Promise<Message> {
    const test = (message: Message) => message.type === type && match(message);
    const index = this.#inbox.findIndex(test);
    if (index !== -1) return Promise.resolve(this.#inbox.splice(index, 1)[0]!);
    if (this.#exited) return Promise.reject(new Error(this.#exited));
    return new Promise<Message>((resolve, reject) => {
      const waiter: Waiter = {
        match: test,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(waiter);
          reject(new Error(`${this.name}: no '${type}' message within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.#waiters.add(waiter);
    });
  }

  /** Sends `message` and waits for the reply of type `reply`. */
  request(message: Message, reply: string, timeoutMs: number): Promise<Message> {
    const waiting = this.waitFor(reply, timeoutMs);
    this.send(message);
    return waiting;
  }

  kill(): void {
    if (this.#proc.exitCode === null && this.#proc.signalCode === null) this.#proc.kill('SIGKILL');
    live.delete(this.#proc);
  }

  #deliver(message: Message): void {
    for (const waiter of this.#waiters) {
      if (waiter.match(message)) {
        this.#waiters.delete(waiter);
        clearTimeout(waiter.timer);
        waiter.resolve(message);
        return;
      }
    }
    this.#inbox.push(message);
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** An error's first line, at most 300 characters: what a status cell or a log line shows. */
export const firstLine = (error: unknown) =>
  String((error as Error)?.message ?? error)
    .split('\n')[0]!
    .slice(0, 300);

export function log(text: string): void {
  process.stderr.write(`${text}\n`);
}

/** A suite's result for one variant: it failed once it has a reason. */
export interface VariantResult {
  ok: boolean;
  reason?: string;
}

/**
 * How every side-by-side suite runs: each rig opened first (a setup failure is its variant's reason,
 * and it sits the rounds out), then `rounds` rounds in which every rig still standing takes one turn,
 * in an order that rotates so that drift of the shared machine hits them all alike. A turn that fails
 * answers with why (or throws it); that retires its rig. Every rig is closed at the end.
 */
export async function interleavedRounds<R extends VariantResult, G extends { close(): void }>(
  entries: ReadonlyArray<{ readonly variant: string; readonly rig: G; readonly result: R }>,
  rounds: number,
  open: (rig: G) => Promise<void>,
  turn: (rig: G, result: R, round: number) => Promise<string | undefined>,
): Promise<void> {
  try {
    for (const { variant, rig, result } of entries) {
      try {
        await open(rig);
      } catch (error) {
        rig.close();
        result.reason = `setup: ${firstLine(error)}`;
        log(`  ${variant}: ${result.reason}`);
      }
    }
    for (let round = 0; round < rounds; round++) {
      const shift = round % Math.max(1, entries.length);
      for (const { rig, result } of [...entries.slice(shift), ...entries.slice(0, shift)]) {
        if (result.reason) continue;
        const failed = await turn(rig, result, round).catch((error: unknown) => firstLine(error));
        if (failed !== undefined) {
          result.reason = `round ${round + 1}: ${failed}`;
          rig.close();
        }
      }
      log(`    round ${round + 1}/${rounds} done`);
    }
    for (const { result } of entries) result.ok = result.reason === undefined;
  } finally {
    for (const { rig } of entries) rig.close();
  }
}

/** Peers are devDependencies: a variant whose packages do not load is skipped with the reason. */
export async function unavailable(variant: string): Promise<string | undefined> {
  const needs: Record<string, string[]> = {
    'better-sse': ['better-sse'],
    'sse-channel': ['sse-channel'],
    hono: ['hono', 'hono/streaming', '@hono/node-server'],
  };
  for (const name of needs[variant] ?? []) {
    try {
      await import(name);
    } catch (error) {
      return `${name} does not load on Node ${process.versions.node}: ${firstLine(error)}`;
    }
  }
  return undefined;
}

// --- figures ---

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export const medianOf = (values: number[]) => (values.length > 0 ? median(values) : undefined);

/** The median of a figure over the sound phases that have it. */
export function pick<P extends { ok: boolean }>(phases: P[], value: (phase: P) => number | undefined) {
  return medianOf(
    phases
      .filter((p) => p.ok)
      .map(value)
      .filter((v): v is number => v !== undefined && Number.isFinite(v)),
  );
}

/** Per-round ratios of `value` to the baseline's phase of the same round, where both are sound. */
export function roundRatios<P extends { ok: boolean }>(phases: P[], base: P[], value: (phase: P) => number) {
  const ratios: number[] = [];
  phases.forEach((phase, i) => {
    const basePhase = base[i];
    if (phase.ok && basePhase?.ok) ratios.push(value(phase) / value(basePhase));
  });
  return ratios;
}

/** A figure with 0, 1, 2 or 3 decimals, or '—' where there is none. */
export const [d0, d1, d2, d3] = [0, 1, 2, 3].map(
  (digits) => (value: number | undefined) =>
    value === undefined || !Number.isFinite(value) ? '—' : value.toFixed(digits),
) as [Format, Format, Format, Format];
type Format = (value: number | undefined) => string;
/** µs as ms, one decimal. */
export const ms = (us: number | undefined) => d1(us === undefined ? undefined : us / 1000);
/** The median of per-round ratios and their spread: `0.98× (0.91–1.07)`. */
export const ratio = (values: number[]) =>
  values.length === 0
    ? '—'
    : `${median(values).toFixed(2)}× (${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)})`;
/** A whole number with thousands separators. */
export const thousands = (value: number | undefined) =>
  value === undefined || !Number.isFinite(value) ? '—' : Math.round(value).toLocaleString('en-US');
/** A whole difference with its sign: `+12`, `-3`. */
export const signed = (value: number | undefined) =>
  value === undefined || !Number.isFinite(value) ? '—' : `${value >= 0 ? '+' : ''}${Math.round(value)}`;
/** 'ok: …' or why it failed. */
export const statusOf = (result: VariantResult, ok: string) =>
  result.ok ? `ok: ${ok}` : `FAILED: ${result.reason ?? 'no figures'}`;

/** A ratio against its goal (`≤ 1.05` or `≥ 1.40`): met, or by how much it was missed. */
export function verdict(name: string, value: number | undefined, goal: string): string {
  if (value === undefined) return `${name}: not measured`;
  const [sign, limit] = [goal[0], Number(goal.slice(1))];
  const off = sign === '≥' ? 1 - value / limit : value / limit - 1;
  return `${name} ${value.toFixed(2)}× (goal ${sign} ${limit.toFixed(2)}×): ${off <= 0 ? 'met' : `MISSED by ${(100 * off).toFixed(0)}%`}`;
}

// --- the report ---

/** One table of the report: a header row, rows, and the notes printed under it. */
const report: Array<{ rows: string[][]; notes: string }> = [];
/** Notes printed after the tables: goals, what a section skipped or saw outside its measurements. */
export const reportNotes: string[] = [];

/** Starts a table of the report, its columns as [header, cell of a row]; returns how to add a row. */
export function newTable<R>(notes: string, columns: Array<[string, (row: R) => string]>): (row: R) => void {
  const rows = [columns.map(([header]) => header)];
  report.push({ rows, notes });
  return (row) => rows.push(columns.map(([, cell]) => cell(row)));
}

/** A plain-text table: the first row is the header; numeric-looking cells are right-aligned. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) {
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, cell.length);
  }
  const numeric = /^[-+]?[\d.,]+( ?[a-zµ%×/]+)?( \([\d.–]+\))?$|^—$/i;
  const line = (row: string[]) =>
    row
      .map((cell, i) => (numeric.test(cell) && i > 0 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

/** The report as text: each table that has rows, then its notes. */
export function reportText(): string {
  return report
    .filter(({ rows }) => rows.length > 1)
    .map(({ rows, notes }) => `${table(rows)}\n\n${notes.trim()}\n`)
    .concat(reportNotes.map((note) => `Note: ${note}`).join('\n'))
    .join('\n');
}
