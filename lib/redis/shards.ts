import type { EventsListener } from '../hub/store';
import type { Commands } from './client';
import type { Keys, Layout } from './layout';
import { LiveReader, type ReaderHost } from './reader';

/**
 * The live readers of a process, one per shard of the layout that has followed topics: one in all on a
 * single server; on a Cluster one per shard in use, each on its own connection, since a blocking read
 * holds its connection and may name keys of one slot only.
 */
export class ShardReaders {
  readonly #readers: Array<LiveReader | undefined>;
  readonly #make: (shard: number) => LiveReader;

  constructor(main: Commands, host: ReaderHost, blockMs: number, layout: Layout) {
    this.#readers = new Array<LiveReader | undefined>(layout.shards);
    this.#make = (shard) => new LiveReader(main, host, blockMs, layout.wakeKey(shard));
  }

  follow(topic: string, keys: Keys, deliver: EventsListener): Promise<void> {
    this.#readers[keys.shard] ??= this.#make(keys.shard);
    return this.#readers[keys.shard]!.follow(topic, keys, deliver);
  }

  unfollow(topic: string, keys: Keys): void {
    this.#readers[keys.shard]?.unfollow(topic);
  }

  noticeEpoch(topic: string, keys: Keys, epoch: string): void {
    this.#readers[keys.shard]?.noticeEpoch(topic, epoch);
  }

  get lagMs(): number {
    return Math.max(0, ...this.#all().map((reader) => reader.lagMs));
  }

  get reconnects(): number {
    return this.#all().reduce((sum, reader) => sum + reader.reconnects, 0);
  }

  get topics(): number {
    return this.#all().reduce((sum, reader) => sum + reader.topics, 0);
  }

  async close(): Promise<void> {
    await Promise.all(this.#all().map((reader) => reader.close()));
  }

  #all(): LiveReader[] {
    return this.#readers.filter((reader) => reader !== undefined);
  }
}
