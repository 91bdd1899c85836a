/**
 * Child-process plumbing for the benchmarks: every child is forked with an IPC channel, tracked, and
 * killed when the run ends — normally, on failure, on Ctrl-C or when the global watchdog fires.
 * Every wait has a time bound.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = fileURLToPath(new URL('.', import.meta.url));

export type Message = { type: string } & Record<string, unknown>;

const live = new Set<ChildProcess>();

export function killAll(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
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

export interface ChildOptions {
  name: string;
  execArgv?: string[];
  env?: Record<string, string>;
}

/** One forked child (`node` on a .mjs file, with no tsx loader), spoken to by IPC messages. */
export class Child {
  readonly name: string;
  readonly #proc: ChildProcess;
  readonly #inbox: Message[] = [];
  readonly #waiters = new Set<Waiter>();
  #stderr = '';
  #exited: string | undefined;

  constructor(script: string, args: string[], options: ChildOptions) {
    hookExit();
    this.name = options.name;
    this.#proc = fork(`${BENCH_DIR}children/${script}`, args, {
      execArgv: options.execArgv ?? [],
      env: { ...process.env, ...options.env },
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

  get stderr(): string {
    return this.#stderr;
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

/** Runs `body` with the children it starts, and kills them whatever happens. */
export async function withChildren<T>(body: (start: typeof startChild) => Promise<T>): Promise<T> {
  const started: Child[] = [];
  const start: typeof startChild = (...args) => {
    const child = startChild(...args);
    started.push(child);
    return child;
  };
  try {
    return await body(start);
  } finally {
    for (const child of started) child.kill();
  }
}

export function startChild(script: string, args: string[], options: ChildOptions): Child {
  return new Child(script, args, options);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** How every server child is started: with gc() exposed, for its heap readings and between phases. */
export const SERVER_ARGV = ['--expose-gc'];

/** An error's first line, at most 300 characters: what a table's status cell or a log line shows. */
export const firstLine = (error: unknown) => (error as Error).message.split('\n')[0]!.slice(0, 300);

/**
 * Polls a server child ('count' replies) until it has opened `n` streams, within `timeLimitMs`; on the
 * Redis store, until the store has also read each one's starting point (`positioned`), so no event
 * published afterwards can miss a subscriber. The streams ready by then.
 */
export async function untilServerHas(server: Child, n: number, timeLimitMs: number): Promise<number> {
  const deadline = Date.now() + timeLimitMs;
  for (;;) {
    const { opened, positioned } = await server.request({ type: 'count' }, 'count', 5_000);
    const ready = Math.min(opened as number, (positioned as number | undefined) ?? Number.POSITIVE_INFINITY);
    if (ready >= n || Date.now() > deadline) return ready;
    await sleep(50);
  }
}

/**
 * Asks a client child to open `n` more streams to `port` (`parallel` handshakes at a time, within
 * `timeLimitMs`; the child's defaults otherwise) and throws unless it then has `total` (by default `n`)
 * heads read and no failure.
 */
export async function openClients(
  client: Child,
  open: { port: unknown; n: number; parallel?: number; timeLimitMs?: number },
  timeoutMs: number,
  total = open.n,
): Promise<void> {
  const opened = await client.request({ type: 'open', ...open }, 'opened', timeoutMs);
  if (opened.headersDone !== total || opened.failures !== 0) {
    throw new Error(`opened ${opened.headersDone}/${total} streams (${opened.failures} failed)`);
  }
}

/**
 * Warm-up events (JIT, buffers), not measured: `server` publishes `count` events, within `timeLimitMs`,
 * and `client` must then have them on each of its `streams` streams.
 */
export async function warmUp(
  server: Child,
  client: Child,
  streams: number,
  count: number,
  timeLimitMs: number,
): Promise<void> {
  client.send({ type: 'expect', total: streams * count, tag: 'warm' });
  await server.request({ type: 'warm', count, timeLimitMs }, 'warmed', timeLimitMs + 5_000);
  await client.waitFor('reached', timeLimitMs, (m) => m.tag === 'warm');
}

/** A suite's result for one variant: it failed once it has a reason. */
export interface VariantResult {
  ok: boolean;
  reason?: string;
}

/**
 * How every side-by-side suite runs its variants: each one's rig opened first (a setup failure is the
 * variant's reason, and it sits the rounds out), then `rounds` rounds in which every variant still
 * standing takes one turn, in an order that rotates so that drift hits them all alike. A turn that
 * fails answers with why (or throws it); that retires its rig. Every rig is closed at the end, whatever
 * happened.
 */
export async function interleavedRounds<R extends VariantResult, G extends { close(): void }>(
  entries: ReadonlyArray<{ readonly variant: string; readonly rig: G; readonly result: R }>,
  rounds: number,
  open: (rig: G) => Promise<void>,
  turn: (rig: G, result: R, round: number) => Promise<string | undefined>,
  roundLine: () => string = () => 'done',
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
      for (const { rig, result } of rotate(entries, round)) {
        if (result.reason) continue;
        const failed = await turn(rig, result, round).catch((error: unknown) => firstLine(error));
        if (failed !== undefined) {
          result.reason = `round ${round + 1}: ${failed}`;
          rig.close();
        }
      }
      log(`    round ${round + 1}/${rounds}: ${roundLine()}`);
    }
    for (const { result } of entries) result.ok = result.reason === undefined;
  } finally {
    for (const { rig } of entries) rig.close();
  }
}

/** `items` rotated left by `round` places: the order in which rigs take their turn in that round. */
function rotate<T>(items: readonly T[], round: number): T[] {
  const shift = items.length === 0 ? 0 : round % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

/** As untilServerHas, but throws unless all `n` streams are open in time. */
export async function serverHolds(server: Child, n: number, timeLimitMs: number): Promise<void> {
  const held = await untilServerHas(server, n, timeLimitMs);
  if (held < n) throw new Error(`the server opened ${held} of ${n} streams`);
}

export function log(text: string): void {
  process.stderr.write(`${text}\n`);
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** A table and the notes under it, each followed by a blank line; nothing at all when there are no rows. */
export function tableWithNotes(rows: string[][], notes: string[]): string[] {
  return rows.length === 0 ? [] : [table(rows), '', ...notes, ''];
}

/** A plain-text table: the first row is the header; numeric-looking cells are right-aligned. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) {
    for (let i = 0; i < row.length; i++) widths[i] = Math.max(widths[i] ?? 0, row[i]!.length);
  }
  const numeric = /^[-+]?[\d.,]+( ?[a-zµ%×/]+)?$|^[\d.]+×$|^—$/i;
  const line = (row: string[]) =>
    row
      .map((cell, i) => (numeric.test(cell) && i > 0 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(rows[0]!), rule, ...rows.slice(1).map(line)].join('\n');
}

/** Peers are devDependencies; a variant whose packages do not load is skipped with the reason. */
export async function unavailable(variant: string): Promise<string | undefined> {
  const needs: Record<string, string[]> = {
    'better-sse': ['better-sse'],
    'sse-channel': ['sse-channel'],
    hono: ['hono', 'hono/streaming', '@hono/node-server'],
  };
  for (const name of needs[variant] ?? []) {
    try {
      const specifier: string = name;
      await import(specifier);
    } catch (error) {
      return `${name} does not load on Node ${process.versions.node}: ${(error as Error).message.split('\n')[0]}`;
    }
  }
  return undefined;
}
