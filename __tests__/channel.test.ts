import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import {
  Channel,
  type ChannelBuffer,
  ChannelOverflowError,
  droppingBuffer,
  fixedBuffer,
  isChannel,
  MAX_PENDING,
  slidingBuffer,
} from '../lib';

/** Lets every promise reaction that is ready run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

type Outcome<V> =
  | { state: 'pending' }
  | { state: 'resolved'; value: V }
  | { state: 'rejected'; error: unknown };

interface Tracked<V> {
  outcome: Outcome<V>;
}

/** Records how a promise settles, so a test can assert that it is still pending. */
function track<V>(promise: Promise<V>): Tracked<V> {
  const tracked: Tracked<V> = { outcome: { state: 'pending' } };
  promise.then(
    (value) => {
      tracked.outcome = { state: 'resolved', value };
    },
    (error: unknown) => {
      tracked.outcome = { state: 'rejected', error };
    },
  );
  return tracked;
}

const pending = { state: 'pending' } as const;
const resolvedWith = <V>(value: V) => ({ state: 'resolved', value }) as const;

/** Everything takeable right now, without waiting. */
function pollAll<T>(channel: { poll(): T | undefined }): T[] {
  const values: T[] = [];
  for (let value = channel.poll(); value !== undefined; value = channel.poll()) values.push(value);
  return values;
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const values: T[] = [];
  for await (const value of iterable) values.push(value);
  return values;
}

describe('Channel', () => {
  describe('rendezvous (no buffer)', () => {
    it('makes put() wait until a taker takes the value', async () => {
      const channel = new Channel<string>();
      const put = track(channel.put('a'));
      await settle();
      expect(put.outcome).toEqual(pending);

      await expect(channel.take()).resolves.toBe('a');
      await settle();
      expect(put.outcome).toEqual(resolvedWith(true));
    });

    it('makes take() wait until a value is put', async () => {
      const channel = new Channel<string>();
      const take = track(channel.take());
      await settle();
      expect(take.outcome).toEqual(pending);

      await expect(channel.put('a')).resolves.toBe(true);
      await settle();
      expect(take.outcome).toEqual(resolvedWith('a'));
    });

    it('is also what new Channel(0) gives', async () => {
      const channel = new Channel<string>(0);
      const put = track(channel.put('a'));
      await settle();
      expect(put.outcome).toEqual(pending);
      expect(channel.offer('b')).toBe(false);
    });

    it('hands over waiting puts in the order they were made', async () => {
      const channel = new Channel<string>();
      const puts = ['a', 'b', 'c'].map((value) => track(channel.put(value)));
      expect([await channel.take(), await channel.take(), await channel.take()]).toEqual(['a', 'b', 'c']);
      await settle();
      expect(puts.map((put) => put.outcome)).toEqual([true, true, true].map(resolvedWith));
    });

    it('keeps waiting puts in order while they come and go', async () => {
      const channel = new Channel<number>();
      for (const value of [1, 2, 3]) void channel.put(value);
      expect([channel.poll(), channel.poll()]).toEqual([1, 2]);
      for (const value of [4, 5, 6, 7, 8]) void channel.put(value);
      expect(pollAll(channel)).toEqual([3, 4, 5, 6, 7, 8]);
    });

    it('serves waiting takes in the order they were made', async () => {
      const channel = new Channel<string>();
      const takes = [track(channel.take()), track(channel.take())];
      channel.offer('x');
      channel.offer('y');
      await settle();
      expect(takes.map((take) => take.outcome)).toEqual([resolvedWith('x'), resolvedWith('y')]);
    });

    it('refuses offer() unless a take is waiting, and does not keep the value', async () => {
      const channel = new Channel<string>();
      expect(channel.offer('lost')).toBe(false);
      expect(channel.poll()).toBeUndefined();

      const take = channel.take();
      expect(channel.offer('kept')).toBe(true);
      await expect(take).resolves.toBe('kept');
    });

    it('lets poll() take the value of a waiting put, which then resolves true', async () => {
      const channel = new Channel<string>();
      const put = track(channel.put('a'));
      expect(channel.poll()).toBe('a');
      expect(channel.poll()).toBeUndefined();
      await settle();
      expect(put.outcome).toEqual(resolvedWith(true));
    });
  });

  describe('fixedBuffer(n)', () => {
    it('accepts n puts at once, then makes puts wait for a take', async () => {
      const channel = new Channel<number>(fixedBuffer(2));
      const puts = [1, 2, 3].map((value) => track(channel.put(value)));
      await settle();
      expect(puts.map((put) => put.outcome)).toEqual([resolvedWith(true), resolvedWith(true), pending]);

      await expect(channel.take()).resolves.toBe(1);
      await settle();
      expect(puts[2]!.outcome).toEqual(resolvedWith(true));
      expect(pollAll(channel)).toEqual([2, 3]);
    });

    it('is what new Channel(n) gives', () => {
      const channel = new Channel<number>(2);
      expect([channel.offer(1), channel.offer(2), channel.offer(3)]).toEqual([true, true, false]);
      expect(pollAll(channel)).toEqual([1, 2]);
    });

    it('keeps FIFO order across the buffer and the waiting puts', async () => {
      const channel = new Channel<number>(2);
      for (const value of [1, 2, 3, 4, 5]) void channel.put(value);
      const taken: Array<number | undefined> = [];
      for (let i = 0; i < 5; i++) taken.push(await channel.take());
      expect(taken).toEqual([1, 2, 3, 4, 5]);
    });

    it('keeps order while values wrap around and the buffer grows past its first allocation', () => {
      const channel = new Channel<number>(100);
      let next = 0;
      let expected = 0;
      // Start part-way into the ring so that it grows while wrapped, then fill and half-empty it repeatedly.
      for (let i = 0; i < 10; i++) channel.offer(next++);
      for (let i = 0; i < 5; i++) expect(channel.poll()).toBe(expected++);
      for (let round = 0; round < 10; round++) {
        while (channel.offer(next)) next++;
        for (let i = 0; i < 50; i++) expect(channel.poll()).toBe(expected++);
      }
      expect(pollAll(channel)).toEqual(Array.from({ length: next - expected }, (_, i) => expected + i));
      expect(next).toBe(105 + 9 * 50);
    });

    it('reports size, length and full, and refuses add() when full', () => {
      const buffer = fixedBuffer<string>(2);
      expect([buffer.size, buffer.length, buffer.full]).toEqual([2, 0, false]);
      buffer.add('a');
      buffer.add('b');
      expect([buffer.length, buffer.full]).toEqual([2, true]);
      expect(() => buffer.add('c')).toThrow(RangeError);
      expect(buffer.remove()).toBe('a');
      expect([buffer.length, buffer.full]).toEqual([1, false]);
    });
  });

  describe('droppingBuffer(n)', () => {
    it('never makes put() wait, and drops new values once full', async () => {
      const channel = new Channel<number>(droppingBuffer(2));
      const puts = [1, 2, 3, 4].map((value) => track(channel.put(value)));
      await settle();
      expect(puts.map((put) => put.outcome)).toEqual([true, true, true, true].map(resolvedWith));
      expect(pollAll(channel)).toEqual([1, 2]);
    });

    it('accepts offer() even when full, dropping the value', () => {
      const channel = new Channel<number>(droppingBuffer(2));
      expect([channel.offer(1), channel.offer(2), channel.offer(3)]).toEqual([true, true, true]);
      expect(pollAll(channel)).toEqual([1, 2]);
    });

    it('keeps new values again once a take makes room', () => {
      const channel = new Channel<number>(droppingBuffer(2));
      for (const value of [1, 2, 3]) channel.offer(value);
      expect(channel.poll()).toBe(1);
      channel.offer(4);
      channel.offer(5);
      expect(pollAll(channel)).toEqual([2, 4]);
    });

    it('is never full', () => {
      const buffer = droppingBuffer<string>(1);
      buffer.add('a');
      buffer.add('b');
      expect([buffer.size, buffer.length, buffer.full]).toEqual([1, 1, false]);
      expect(buffer.remove()).toBe('a');
    });
  });

  describe('slidingBuffer(n)', () => {
    it('never makes put() wait, and drops the oldest values once full', async () => {
      const channel = new Channel<number>(slidingBuffer(2));
      const puts = [1, 2, 3, 4].map((value) => track(channel.put(value)));
      await settle();
      expect(puts.map((put) => put.outcome)).toEqual([true, true, true, true].map(resolvedWith));
      expect(pollAll(channel)).toEqual([3, 4]);
    });

    it('accepts offer() even when full, dropping the oldest value', () => {
      const channel = new Channel<number>(slidingBuffer(2));
      expect([channel.offer(1), channel.offer(2), channel.offer(3)]).toEqual([true, true, true]);
      expect(pollAll(channel)).toEqual([2, 3]);
    });

    it('is never full', () => {
      const buffer = slidingBuffer<string>(1);
      buffer.add('a');
      buffer.add('b');
      expect([buffer.size, buffer.length, buffer.full]).toEqual([1, 1, false]);
      expect(buffer.remove()).toBe('b');
    });
  });

  describe('close()', () => {
    it('marks the channel closed', () => {
      const channel = new Channel<number>();
      expect(channel.closed).toBe(false);
      channel.close();
      expect(channel.closed).toBe(true);
    });

    it('keeps buffered values takeable, then take() resolves undefined', async () => {
      const channel = new Channel<number>(3);
      channel.offer(1);
      channel.offer(2);
      channel.close();
      expect([await channel.take(), await channel.take(), await channel.take()]).toEqual([1, 2, undefined]);
    });

    it('is idempotent: closing again changes nothing', async () => {
      const channel = new Channel<number>(2);
      channel.offer(1);
      channel.close();
      channel.close();
      expect(channel.closed).toBe(true);
      expect([await channel.take(), await channel.take()]).toEqual([1, undefined]);
    });

    it('releases waiting puts with false and discards their values', async () => {
      const channel = new Channel<string>();
      const puts = [track(channel.put('a')), track(channel.put('b'))];
      channel.close();
      await settle();
      expect(puts.map((put) => put.outcome)).toEqual([resolvedWith(false), resolvedWith(false)]);
      await expect(channel.take()).resolves.toBeUndefined();
    });

    it('keeps what the buffer accepted while discarding what was still waiting', async () => {
      const channel = new Channel<number>(1);
      const accepted = track(channel.put(1));
      const waiting = track(channel.put(2));
      channel.close();
      await settle();
      expect([accepted.outcome, waiting.outcome]).toEqual([resolvedWith(true), resolvedWith(false)]);
      expect([await channel.take(), await channel.take()]).toEqual([1, undefined]);
    });

    it('resolves waiting takes with undefined', async () => {
      const channel = new Channel<number>(1);
      const takes = [channel.take(), channel.take()];
      channel.close();
      await expect(Promise.all(takes)).resolves.toEqual([undefined, undefined]);
    });

    it('makes later put() resolve false and offer() return false, even with room in the buffer', async () => {
      const channel = new Channel<number>(slidingBuffer(4));
      channel.close();
      await expect(channel.put(1)).resolves.toBe(false);
      expect(channel.offer(2)).toBe(false);
      expect(channel.poll()).toBeUndefined();
    });
  });

  // Each state is built fresh, then every operation is tried on it.
  describe('in every state', () => {
    describe('open, empty', () => {
      const given = () => new Channel<number>(2);

      it('put() is accepted at once', async () => {
        const channel = given();
        await expect(channel.put(9)).resolves.toBe(true);
        expect(pollAll(channel)).toEqual([9]);
      });

      it('offer() is accepted', () => {
        const channel = given();
        expect(channel.offer(9)).toBe(true);
        expect(pollAll(channel)).toEqual([9]);
      });

      it('take() waits for the next put', async () => {
        const channel = given();
        const take = track(channel.take());
        await settle();
        expect(take.outcome).toEqual(pending);
        channel.offer(9);
        await settle();
        expect(take.outcome).toEqual(resolvedWith(9));
      });

      it('poll() returns undefined', () => {
        expect(given().poll()).toBeUndefined();
      });

      it('close() leaves it closed and drained', async () => {
        const channel = given();
        channel.close();
        expect(channel.closed).toBe(true);
        await expect(channel.take()).resolves.toBeUndefined();
      });

      it('iteration waits for values and ends at close', async () => {
        const channel = given();
        const values = collect(channel);
        await channel.put(9);
        channel.close();
        await expect(values).resolves.toEqual([9]);
      });
    });

    describe('open, with buffered values', () => {
      const given = () => {
        const channel = new Channel<number>(2);
        channel.offer(1);
        return channel;
      };

      it('put() is accepted at once while there is room', async () => {
        const channel = given();
        await expect(channel.put(9)).resolves.toBe(true);
        expect(pollAll(channel)).toEqual([1, 9]);
      });

      it('offer() is accepted while there is room', () => {
        const channel = given();
        expect(channel.offer(9)).toBe(true);
        expect(channel.offer(10)).toBe(false);
        expect(pollAll(channel)).toEqual([1, 9]);
      });

      it('take() gets the oldest value at once', async () => {
        await expect(given().take()).resolves.toBe(1);
      });

      it('poll() gets the oldest value', () => {
        const channel = given();
        expect(channel.poll()).toBe(1);
        expect(channel.poll()).toBeUndefined();
      });

      it('close() keeps the values takeable', async () => {
        const channel = given();
        channel.close();
        expect([await channel.take(), await channel.take()]).toEqual([1, undefined]);
      });

      it('iteration yields the values, then waits for more', async () => {
        const channel = given();
        const values = collect(channel);
        await settle();
        await channel.put(2);
        channel.close();
        await expect(values).resolves.toEqual([1, 2]);
      });
    });

    describe('open, with waiting puts', () => {
      const given = () => {
        const channel = new Channel<number>(1);
        channel.offer(1);
        const puts = [track(channel.put(2)), track(channel.put(3))];
        return { channel, puts };
      };

      it('put() waits behind them', async () => {
        const { channel } = given();
        const put = track(channel.put(9));
        await settle();
        expect(put.outcome).toEqual(pending);
        expect(pollAll(channel)).toEqual([1, 2, 3, 9]);
        await settle();
        expect(put.outcome).toEqual(resolvedWith(true));
      });

      it('offer() is refused', () => {
        const { channel } = given();
        expect(channel.offer(9)).toBe(false);
        expect(pollAll(channel)).toEqual([1, 2, 3]);
      });

      it('take() gets the buffered value and lets the first waiting put in', async () => {
        const { channel, puts } = given();
        await expect(channel.take()).resolves.toBe(1);
        await settle();
        expect(puts.map((put) => put.outcome)).toEqual([resolvedWith(true), pending]);
        expect(pollAll(channel)).toEqual([2, 3]);
      });

      it('poll() gets the buffered value and lets the first waiting put in', async () => {
        const { channel, puts } = given();
        expect(channel.poll()).toBe(1);
        await settle();
        expect(puts.map((put) => put.outcome)).toEqual([resolvedWith(true), pending]);
      });

      it('close() releases the waiting puts with false and keeps the buffered value', async () => {
        const { channel, puts } = given();
        channel.close();
        await settle();
        expect(puts.map((put) => put.outcome)).toEqual([resolvedWith(false), resolvedWith(false)]);
        expect(pollAll(channel)).toEqual([1]);
      });

      it('iteration yields the buffered and the waiting values', async () => {
        const { channel, puts } = given();
        const values = collect(channel);
        await settle();
        channel.close();
        await expect(values).resolves.toEqual([1, 2, 3]);
        expect(puts.map((put) => put.outcome)).toEqual([resolvedWith(true), resolvedWith(true)]);
      });
    });

    describe('open, with waiting takes', () => {
      const given = () => {
        const channel = new Channel<number>(2);
        const takes = [track(channel.take()), track(channel.take())];
        return { channel, takes };
      };

      it('put() is handed to the first waiting take', async () => {
        const { channel, takes } = given();
        await expect(channel.put(9)).resolves.toBe(true);
        await settle();
        expect(takes.map((take) => take.outcome)).toEqual([resolvedWith(9), pending]);
        expect(channel.poll()).toBeUndefined();
      });

      it('offer() is handed to the first waiting take', async () => {
        const { channel, takes } = given();
        expect(channel.offer(9)).toBe(true);
        await settle();
        expect(takes.map((take) => take.outcome)).toEqual([resolvedWith(9), pending]);
      });

      it('take() waits behind them', async () => {
        const { channel, takes } = given();
        const take = track(channel.take());
        for (const value of [7, 8, 9]) channel.offer(value);
        await settle();
        expect([...takes, take].map((t) => t.outcome)).toEqual([7, 8, 9].map(resolvedWith));
      });

      it('poll() returns undefined and leaves them waiting', async () => {
        const { channel, takes } = given();
        expect(channel.poll()).toBeUndefined();
        channel.offer(9);
        await settle();
        expect(takes[0]!.outcome).toEqual(resolvedWith(9));
      });

      it('close() resolves them with undefined', async () => {
        const { channel, takes } = given();
        channel.close();
        await settle();
        expect(takes.map((take) => take.outcome)).toEqual([resolvedWith(undefined), resolvedWith(undefined)]);
      });

      it('iteration waits behind them', async () => {
        const { channel } = given();
        const values = collect(channel);
        for (const value of [7, 8, 9]) channel.offer(value);
        await settle();
        channel.close();
        await expect(values).resolves.toEqual([9]);
      });
    });

    describe('closed, with buffered values', () => {
      const given = () => {
        const channel = new Channel<number>(2);
        channel.offer(1);
        channel.offer(2);
        channel.close();
        return channel;
      };

      it('put() resolves false and is not kept', async () => {
        const channel = given();
        expect(channel.poll()).toBe(1);
        await expect(channel.put(9)).resolves.toBe(false);
        expect(pollAll(channel)).toEqual([2]);
      });

      it('offer() returns false', () => {
        const channel = given();
        channel.poll();
        expect(channel.offer(9)).toBe(false);
        expect(pollAll(channel)).toEqual([2]);
      });

      it('take() drains the values, then resolves undefined', async () => {
        const channel = given();
        expect([await channel.take(), await channel.take(), await channel.take()]).toEqual([1, 2, undefined]);
      });

      it('poll() drains the values', () => {
        expect(pollAll(given())).toEqual([1, 2]);
      });

      it('close() changes nothing', () => {
        const channel = given();
        channel.close();
        expect(channel.closed).toBe(true);
        expect(pollAll(channel)).toEqual([1, 2]);
      });

      it('iteration yields the values and ends', async () => {
        await expect(collect(given())).resolves.toEqual([1, 2]);
      });
    });

    describe('closed, drained', () => {
      const given = () => {
        const channel = new Channel<number>(2);
        channel.offer(1);
        channel.close();
        channel.poll();
        return channel;
      };

      it('put() resolves false', async () => {
        await expect(given().put(9)).resolves.toBe(false);
      });

      it('offer() returns false', () => {
        expect(given().offer(9)).toBe(false);
      });

      it('take() resolves undefined', async () => {
        await expect(given().take()).resolves.toBeUndefined();
      });

      it('poll() returns undefined', () => {
        expect(given().poll()).toBeUndefined();
      });

      it('close() changes nothing', async () => {
        const channel = given();
        channel.close();
        expect(channel.closed).toBe(true);
        await expect(channel.take()).resolves.toBeUndefined();
      });

      it('iteration ends at once', async () => {
        const iterator = given()[Symbol.asyncIterator]();
        await expect(iterator.next()).resolves.toEqual({ done: true, value: undefined });
      });
    });
  });

  describe('async iteration', () => {
    it('yields values in order and ends once the channel is closed and drained', async () => {
      const channel = new Channel<number>();
      void (async () => {
        for (let i = 1; i <= 5; i++) await channel.put(i);
        channel.close();
      })();
      await expect(collect(channel)).resolves.toEqual([1, 2, 3, 4, 5]);
    });

    it('makes next() wait for a value', async () => {
      const channel = new Channel<string>();
      const next = track(channel[Symbol.asyncIterator]().next());
      await settle();
      expect(next.outcome).toEqual(pending);
      channel.offer('x');
      await settle();
      expect(next.outcome).toEqual(resolvedWith({ done: false, value: 'x' }));
    });

    it('ends a waiting next() when the channel is closed', async () => {
      const channel = new Channel<string>();
      const next = channel[Symbol.asyncIterator]().next();
      channel.close();
      await expect(next).resolves.toEqual({ done: true, value: undefined });
    });

    it('closes the channel on break, which releases a waiting producer with false', async () => {
      const channel = new Channel<number>();
      const producer = (async () => {
        let i = 0;
        while (await channel.put(++i));
        return i;
      })();
      const seen: number[] = [];
      for await (const value of channel) {
        seen.push(value);
        if (value === 3) break;
      }
      expect(seen).toEqual([1, 2, 3]);
      expect(channel.closed).toBe(true);
      await expect(producer).resolves.toBe(4); // put(4) was waiting and resolved false
    });

    it('closes the channel when the loop body throws', async () => {
      const channel = new Channel<number>(2);
      channel.offer(1);
      await expect(
        (async () => {
          for await (const _ of channel) throw new Error('boom');
        })(),
      ).rejects.toThrow('boom');
      expect(channel.closed).toBe(true);
    });

    it('makes the iterator done after return(), while take() still gets buffered values', async () => {
      const channel = new Channel<number>(3);
      channel.offer(1);
      channel.offer(2);
      const iterator = channel[Symbol.asyncIterator]();
      await expect(iterator.next()).resolves.toEqual({ done: false, value: 1 });
      await expect(iterator.return?.()).resolves.toEqual({ done: true, value: undefined });
      expect(channel.closed).toBe(true);
      await expect(iterator.next()).resolves.toEqual({ done: true, value: undefined });
      await expect(channel.take()).resolves.toBe(2);
    });

    it('gives each value to one of several loops', async () => {
      const channel = new Channel<number>();
      const loops = [collect(channel), collect(channel)];
      for (let i = 0; i < 10; i++) await channel.put(i);
      channel.close();
      const [first, second] = await Promise.all(loops);
      expect([...first!, ...second!].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(first!.length).toBeGreaterThan(0);
      expect(second!.length).toBeGreaterThan(0);
    });

    it('closes the channel on Symbol.asyncDispose', async () => {
      const channel = new Channel<number>(1);
      channel.offer(1);
      await channel[Symbol.asyncDispose]();
      expect(channel.closed).toBe(true);
      await expect(channel.put(2)).resolves.toBe(false);
      expect(pollAll(channel)).toEqual([1]);
    });

    it('closes the channel at the end of an `await using` block', async () => {
      let escaped: Channel<number> | undefined;
      {
        await using channel = new Channel<number>();
        escaped = channel;
        expect(channel.closed).toBe(false);
      }
      expect(escaped.closed).toBe(true);
    });
  });

  describe('pending limits', () => {
    it(`allows ${MAX_PENDING} waiting puts and rejects the next with ChannelOverflowError`, async () => {
      expect(MAX_PENDING).toBe(1024);
      const channel = new Channel<number>();
      const puts = Array.from({ length: 1024 }, (_, i) => track(channel.put(i)));
      await expect(channel.put(1024)).rejects.toThrow(ChannelOverflowError);
      await settle();
      expect(puts.every((put) => put.outcome.state === 'pending')).toBe(true);

      // The refused put is not queued; the others are all still delivered, in order.
      expect(pollAll(channel)).toEqual(Array.from({ length: 1024 }, (_, i) => i));
      await settle();
      expect(puts.every((put) => put.outcome.state === 'resolved')).toBe(true);
    });

    it(`allows ${MAX_PENDING} waiting takes and rejects the next with ChannelOverflowError`, async () => {
      const channel = new Channel<number>();
      const takes = Array.from({ length: 1024 }, () => track(channel.take()));
      await expect(channel.take()).rejects.toThrow(ChannelOverflowError);
      await settle();
      expect(takes.every((take) => take.outcome.state === 'pending')).toBe(true);
      channel.close();
      await settle();
      expect(takes.every((take) => take.outcome.state === 'resolved')).toBe(true);
    });

    it('explains the limit and what to do in the error', async () => {
      const channel = new Channel<number>();
      for (let i = 0; i < MAX_PENDING; i++) void channel.put(i);
      const error: unknown = await channel.put(-1).catch((reason: unknown) => reason);
      expect(error).toBeInstanceOf(Error);
      expect(error).toMatchObject({ name: 'ChannelOverflowError', operation: 'put' });
      expect((error as Error).message).toMatch(/1024 put\(\) calls are already waiting/);
      expect((error as Error).message).toMatch(/buffer.*or await each put\(\)/);
      channel.close();
    });

    it('counts waiting puts only, not buffered values', async () => {
      const channel = new Channel<number>(10);
      for (let i = 0; i < 10 + MAX_PENDING; i++) void channel.put(i);
      await expect(channel.put(-1)).rejects.toBeInstanceOf(ChannelOverflowError);
      channel.close();
    });

    it('accepts a put again once a waiting one has been taken', async () => {
      const channel = new Channel<number>();
      for (let i = 0; i < MAX_PENDING; i++) void channel.put(i);
      await expect(channel.put(-1)).rejects.toBeInstanceOf(ChannelOverflowError);
      expect(channel.poll()).toBe(0);
      const put = track(channel.put(-2));
      await settle();
      expect(put.outcome).toEqual(pending);
      channel.close();
      await settle();
      expect(put.outcome).toEqual(resolvedWith(false));
    });

    it('never makes offer() or poll() overflow', async () => {
      const full = new Channel<number>();
      for (let i = 0; i < MAX_PENDING; i++) void full.put(i);
      expect(full.offer(-1)).toBe(false);

      const starved = new Channel<number>();
      for (let i = 0; i < MAX_PENDING; i++) void starved.take();
      expect(starved.poll()).toBeUndefined();
      full.close();
      starved.close();
    });
  });

  describe('bad input', () => {
    it('names `buffer`, the expectation and the value received in the constructor error', () => {
      expect(() => new Channel(-1)).toThrow(
        new TypeError(
          'Channel: expected `buffer` to be a non-negative integer or a buffer from ' +
            'fixedBuffer/droppingBuffer/slidingBuffer, got number (-1)',
        ),
      );
    });

    it.each([
      ['1.5', 1.5, 'number (1.5)'],
      ['NaN', Number.NaN, 'number (NaN)'],
      ['Infinity', Number.POSITIVE_INFINITY, 'number (Infinity)'],
      ["'3'", '3', 'a string ("3")'],
      ['null', null, 'null'],
      ['true', true, 'boolean (true)'],
      ['{}', {}, 'an object ({})'],
      ['an object without a prototype', Object.create(null), 'an object ({})'],
      ['a half-made buffer (no length, no full)', { add() {}, remove() {} }, 'an object ({})'],
    ])('rejects new Channel(%s) with a TypeError showing the value', (_, buffer, shown) => {
      expect(() => new Channel(buffer as never)).toThrow(TypeError);
      expect(() => new Channel(buffer as never)).toThrow(`got ${shown}`);
    });

    describe.each([
      ['fixedBuffer', fixedBuffer],
      ['droppingBuffer', droppingBuffer],
      ['slidingBuffer', slidingBuffer],
    ])('%s(n)', (name, factory) => {
      it.each([0, -2, 2.5, Number.NaN, Number.POSITIVE_INFINITY, '2', undefined])(
        'rejects n = %p with a TypeError naming `n`',
        (n) => {
          expect(() => factory(n as never)).toThrow(TypeError);
          expect(() => factory(n as never)).toThrow(`${name}: expected \`n\` to be a positive integer, got `);
        },
      );
    });

    it('rejects put(undefined) and offer(undefined) synchronously and leaves the channel as it was', () => {
      const channel = new Channel<number | undefined>(2);
      expect(() => channel.put(undefined)).toThrow(TypeError);
      expect(() => channel.put(undefined)).toThrow(
        'Channel.put: expected `value` to be anything but undefined',
      );
      expect(() => channel.offer(undefined)).toThrow('Channel.offer: expected `value`');
      expect([channel.offer(1), channel.offer(2), channel.offer(3)]).toEqual([true, true, false]);
    });

    it('carries null as an ordinary value, not as "closed"', async () => {
      const channel = new Channel<null>(1);
      await expect(channel.put(null)).resolves.toBe(true);
      await expect(channel.take()).resolves.toBeNull();
      expect(channel.closed).toBe(false);
    });

    it('accepts any object that implements ChannelBuffer', () => {
      // A last-in-first-out buffer, to show the channel follows the buffer's order.
      const stack: number[] = [];
      const lifo: ChannelBuffer<number> = {
        size: 3,
        get length() {
          return stack.length;
        },
        get full() {
          return stack.length >= 3;
        },
        add: (value) => void stack.push(value),
        remove: () => stack.pop()!,
      };
      const channel = new Channel<number>(lifo);
      expect([1, 2, 3, 4].map((value) => channel.offer(value))).toEqual([true, true, true, false]);
      expect(pollAll(channel)).toEqual([3, 2, 1]);
    });
  });

  describe('isChannel()', () => {
    it('recognises a channel, and one made by another copy of the package', () => {
      expect(isChannel(new Channel())).toBe(true);
      const foreign = Object.create({ [Symbol.for('express-streaming.channel')]: true }) as object;
      expect(isChannel(foreign)).toBe(true);
    });

    it.each([
      ['null', null],
      ['undefined', undefined],
      ['a plain object', {}],
      ['a string', 'channel'],
      ['an async iterable with close()', { close() {}, async *[Symbol.asyncIterator]() {} }],
      ['an object with a falsy brand', { [Symbol.for('express-streaming.channel')]: 1 }],
    ])('is false for %s', (_, value) => {
      expect(isChannel(value)).toBe(false);
    });
  });

  describe('against a reference model (fast-check)', () => {
    type Value = number | null;
    type Kind = 'rendezvous' | 'fixed' | 'dropping' | 'sliding';
    type Step = { op: 'put' | 'offer'; value: Value } | { op: 'take' | 'poll' | 'close' | 'next' | 'return' };

    const done = { done: true, value: undefined } as const;

    /** The channel spec over plain arrays, answering every operation synchronously. */
    class Model {
      readonly buffer: Value[] = [];
      readonly puts: Array<{ id: number; value: Value }> = [];
      readonly takes: Array<{ id: number; iterating: boolean }> = [];
      readonly outcomes = new Map<number, Outcome<unknown>>();
      closed = false;
      returned = false;

      constructor(
        readonly kind: Kind,
        readonly size: number,
      ) {}

      put(id: number, value: Value): void {
        this.outcomes.set(id, pending);
        if (this.closed) this.resolve(id, false);
        else if (this.accept(value)) this.resolve(id, true);
        else this.puts.push({ id, value });
      }

      offer(value: Value): boolean {
        return !this.closed && this.accept(value);
      }

      take(id: number, iterating: boolean): void {
        this.outcomes.set(id, pending);
        // A returned iterator is done for good and takes nothing more.
        const value = iterating && this.returned ? undefined : this.poll();
        if (iterating && this.returned) this.resolve(id, done);
        else if (value !== undefined) this.resolve(id, iterating ? { done: false, value } : value);
        else if (this.closed) this.resolve(id, iterating ? done : undefined);
        else this.takes.push({ id, iterating });
      }

      poll(): Value | undefined {
        const put = this.puts.shift();
        if (this.buffer.length > 0) {
          const value = this.buffer.shift();
          if (put) {
            this.buffer.push(put.value);
            this.resolve(put.id, true);
          }
          return value;
        }
        if (put) this.resolve(put.id, true);
        return put?.value;
      }

      close(): void {
        if (this.closed) return;
        this.closed = true;
        for (const put of this.puts.splice(0)) this.resolve(put.id, false);
        for (const take of this.takes.splice(0)) this.resolve(take.id, take.iterating ? done : undefined);
      }

      return(id: number): void {
        this.returned = true;
        this.close();
        this.outcomes.set(id, resolvedWith(done));
      }

      private accept(value: Value): boolean {
        const take = this.takes.shift();
        if (take) {
          this.resolve(take.id, take.iterating ? { done: false, value } : value);
          return true;
        }
        const room = this.buffer.length < this.size;
        if (this.kind === 'rendezvous' || (this.kind === 'fixed' && !room)) return false;
        if (room) this.buffer.push(value);
        else if (this.kind === 'sliding') {
          this.buffer.shift();
          this.buffer.push(value);
        }
        return true;
      }

      private resolve(id: number, value: unknown): void {
        this.outcomes.set(id, resolvedWith(value));
      }
    }

    const value = fc.oneof(fc.integer({ min: 0, max: 99 }), fc.constant(null));
    const step: fc.Arbitrary<Step> = fc.oneof(
      { arbitrary: value.map((v) => ({ op: 'put', value: v }) as const), weight: 4 },
      { arbitrary: value.map((v) => ({ op: 'offer', value: v }) as const), weight: 2 },
      { arbitrary: fc.constant({ op: 'take' } as const), weight: 3 },
      { arbitrary: fc.constant({ op: 'poll' } as const), weight: 2 },
      { arbitrary: fc.constant({ op: 'next' } as const), weight: 1 },
      { arbitrary: fc.constant({ op: 'return' } as const), weight: 1 },
      { arbitrary: fc.constant({ op: 'close' } as const), weight: 1 },
    );

    function bufferFor(kind: Kind, size: number): number | ChannelBuffer<Value> {
      if (kind === 'rendezvous') return 0;
      if (kind === 'fixed') return fixedBuffer(size);
      return kind === 'dropping' ? droppingBuffer(size) : slidingBuffer(size);
    }

    it('agrees with the model on every operation, for random programs', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom<Kind>('rendezvous', 'fixed', 'dropping', 'sliding'),
          fc.integer({ min: 1, max: 4 }),
          fc.array(step, { maxLength: 40, size: 'max' }),
          async (kind, size, steps) => {
            const model = new Model(kind, kind === 'rendezvous' ? 0 : size);
            const channel = new Channel<Value>(bufferFor(kind, size));
            const iterator = channel[Symbol.asyncIterator]();
            const tracked = new Map<number, Tracked<unknown>>();

            const compare = async () => {
              await settle();
              const actual = new Map([...tracked].map(([id, t]) => [id, t.outcome]));
              // isDeepStrictEqual is much cheaper than expect() per step; expect() then explains a mismatch.
              if (!isDeepStrictEqual(actual, model.outcomes)) expect(actual).toEqual(model.outcomes);
              expect(channel.closed).toBe(model.closed);
            };

            for (const [id, s] of steps.entries()) {
              switch (s.op) {
                case 'put':
                  tracked.set(id, track(channel.put(s.value)));
                  model.put(id, s.value);
                  break;
                case 'offer':
                  expect(channel.offer(s.value)).toBe(model.offer(s.value));
                  break;
                case 'take':
                  tracked.set(id, track(channel.take()));
                  model.take(id, false);
                  break;
                case 'poll':
                  expect(channel.poll()).toBe(model.poll());
                  break;
                case 'next':
                  tracked.set(id, track(iterator.next()));
                  model.take(id, true);
                  break;
                case 'return':
                  tracked.set(id, track(iterator.return!()));
                  model.return(id);
                  break;
                case 'close':
                  channel.close();
                  model.close();
                  break;
              }
              await compare();
            }

            // Whatever is left must be the same values, in the same order.
            channel.close();
            model.close();
            await compare();
            expect(pollAll(channel)).toEqual(pollAll(model));
          },
        ),
        { numRuns: 300 },
      );
    });
  });
});
