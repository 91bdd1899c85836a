/** How many topics a process remembers; past it, the least recently seen are forgotten. */
const REMEMBERED_TOPICS = 100_000;

/**
 * What this process saw of each topic's log — its epoch and the highest seq — and of the realm (the
 * store's emptyEpoch). Every script is told it, so that Redis found below it (gone back in time) or
 * without a log it knew (lost) starts a new life and changes the emptyEpoch, instead of handing the
 * same ids to other events. Bounded: a topic forgotten is only a loss that goes unnoticed by this
 * process, never a wrong verdict.
 */
export class Seen {
  /** The realm seen per shard (one on a single server). */
  readonly #realms = new Map<number, string>();
  readonly #topics = new Map<string, { epoch: string; seq: number }>();

  /** The scripts' arguments 2 to 4: the epoch and seq seen of `topic`, and the realm seen of its shard. */
  args(topic: string, shard: number): [epoch: string, seq: string, realm: string] {
    const known = this.#topics.get(topic);
    return [known?.epoch ?? '', String(known?.seq ?? 0), this.#realms.get(shard) ?? ''];
  }

  realm(shard: number, realm: string): void {
    this.#realms.set(shard, realm);
  }

  /** The log of `topic` stands at `seq` of `epoch`, or has no log (`undefined`). */
  saw(topic: string, epoch: string | undefined, seq: number): void {
    const known = this.#topics.get(topic);
    if (epoch === undefined) {
      this.#topics.delete(topic);
      return;
    }
    // taken out and put back: the map's order is that of the last sighting, the oldest forgotten first
    this.#topics.delete(topic);
    const highest = known !== undefined && known.epoch === epoch ? Math.max(known.seq, seq) : seq;
    this.#topics.set(topic, { epoch, seq: highest });
    if (this.#topics.size > REMEMBERED_TOPICS) this.#topics.delete(this.#topics.keys().next().value!);
  }
}
