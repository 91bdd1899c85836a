/**
 * res.stream throughput: one client pulls `bytes` from an async generator of 64 KiB Buffers over
 * loopback; MB/s seen by the client and server CPU per MiB.
 */
import { type Child, firstLine, interleavedRounds, log, median, startChild } from './harness';

export const STREAM_VARIANTS = [
  { id: 'es-stream', label: 'express-streaming res.stream(gen)' },
  { id: 'pipe', label: 'Readable.from(gen).pipe(res)' },
  { id: 'pipeline', label: 'stream.pipeline(Readable.from(gen), res)' },
];

/** One measured response. */
export interface Transfer {
  ok: boolean;
  reason?: string;
  mbPerSec: number;
  cpuUsPerMiB: number;
}

export interface StreamResult {
  variant: string;
  ok: boolean;
  reason?: string;
  transfers: Transfer[];
}

/** One variant's server child and a client child; `get()` streams one body and measures it. */
class StreamRig {
  readonly variant: string;
  #server: Child | undefined;
  #client: Child | undefined;
  #port = 0;

  constructor(variant: string) {
    this.variant = variant;
  }

  async open(profileFile?: string): Promise<void> {
    this.#server = startChild('stream-server.mjs', [this.variant], {
      name: `stream server ${this.variant}`,
      env: profileFile ? { BENCH_CPU_PROFILE: profileFile } : {},
    });
    this.#client = startChild('stream-client.mjs', [], { name: `stream client of ${this.variant}` });
    this.#port = (await this.#server.waitFor('listening', 15_000)).port as number;
  }

  async get(bytes: number, timeLimitMs: number): Promise<Transfer> {
    const reply = await this.#client!.request(
      { type: 'get', port: this.#port, bytes, runs: 1, timeLimitMs },
      'results',
      timeLimitMs + 5_000,
    );
    const [run] = reply.results as Array<{ received: number; ms: number; error?: string }>;
    const served = await this.#server!.waitFor('served', 5_000);
    let reason =
      run!.error ?? (run!.received !== bytes ? `received ${run!.received} of ${bytes} bytes` : undefined);
    if (!reason && served.outcome !== 'finished') reason = `server outcome ${String(served.outcome)}`;
    return {
      ok: reason === undefined,
      ...(reason === undefined ? {} : { reason }),
      mbPerSec: bytes / 1e6 / (run!.ms / 1000),
      cpuUsPerMiB: (served.cpuUs as number) / (bytes / (1024 * 1024)),
    };
  }

  /** Writes the server's CPU profile, when it was started with one. */
  async dumpProfile(): Promise<void> {
    await this.#server!.request({ type: 'dump' }, 'dumped', 10_000);
  }

  close(): void {
    this.#client?.kill();
    this.#server?.kill();
  }
}

/** One variant alone (used by bench/profile.ts): one warm-up transfer, then `runs` measured ones. */
export async function runThroughput(
  variant: string,
  bytes: number,
  runs: number,
  timeLimitMs: number,
  profileFile?: string,
): Promise<StreamResult> {
  const result: StreamResult = { variant, ok: false, transfers: [] };
  const rig = new StreamRig(variant);
  try {
    await rig.open(profileFile);
    for (let i = 0; i <= runs; i++) {
      const transfer = await rig.get(bytes, timeLimitMs);
      if (!transfer.ok) {
        result.reason = transfer.reason;
        return result;
      }
      if (i > 0) result.transfers.push(transfer);
    }
    if (profileFile) await rig.dumpProfile();
    result.ok = true;
    return result;
  } catch (error) {
    result.reason = firstLine(error);
    return result;
  } finally {
    rig.close();
  }
}

/**
 * All variants' servers at once; one warm-up transfer each, then `rounds` rounds in which each
 * variant streams one body in turn (order rotated), so drift of the machine hits them alike.
 */
export async function runThroughputSuite(
  variants: string[],
  bytes: number,
  rounds: number,
  timeLimitMs: number,
): Promise<Map<string, StreamResult>> {
  const entries = variants.map((variant) => ({
    variant,
    rig: new StreamRig(variant),
    result: { variant, ok: false, transfers: [] } as StreamResult,
  }));
  await interleavedRounds(
    entries,
    rounds,
    async (rig) => {
      await rig.open();
      const warm = await rig.get(bytes, timeLimitMs);
      if (!warm.ok) throw new Error(`warm-up: ${warm.reason}`);
    },
    async (rig, result) => {
      const transfer = await rig.get(bytes, timeLimitMs);
      result.transfers.push(transfer);
      return transfer.ok ? undefined : transfer.reason;
    },
  );
  for (const { result } of entries) if (!result.ok) log(`  ${result.variant}: ${result.reason}`);
  return new Map(entries.map(({ variant, result }) => [variant, result]));
}

/** Median MB/s and CPU µs/MiB of a result's transfers. */
export function summary(result: StreamResult): { mbPerSec?: number; cpuUsPerMiB?: number } {
  if (result.transfers.length === 0) return {};
  return {
    mbPerSec: median(result.transfers.map((t) => t.mbPerSec)),
    cpuUsPerMiB: median(result.transfers.map((t) => t.cpuUsPerMiB)),
  };
}
