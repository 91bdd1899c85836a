import { randomBytes } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { isNativeError } from 'node:util/types';
import type Redis from 'ioredis';
import { type HubRecord, type HubStore, type LogId, memoryStore, type StoreStats } from '../lib';
import { redisStore } from '../lib/redis';
import { runStoreContract, type StoreContractOptions, storeContractChecks } from '../lib/testing';
import { requireComponent } from './helpers/components';
import {
  closeClients,
  connectRedis,
  expectRedisContract,
  ioredisClient,
  REDIS_CLIENTS,
  REDIS_URL,
  redisAnswers,
  uniquePrefix,
} from './helpers/redis';
import { expireMemoryLog, forwarding, reEpoched, renumbered, SimulatedEngine } from './helpers/store-doubles';
import { afterPendingEvents, deferred, trackTimers, until } from './helpers/wait';

/** The full name of the one check whose name starts with `start`. */
function check(start: string): string {
  const found = storeContractChecks.filter((name) => name.startsWith(start));
  if (found.length !== 1) throw new Error(`"${start}" names ${found.length} checks`);
  return found[0]!;
}

const token = () => randomBytes(6).toString('hex');

/** How the memory store runs the contract: it loses a log by letting every event expire, never while followed. */
const MEMORY: StoreContractOptions = { loseLog: expireMemoryLog, losesListenedLogs: false };

/** How the simulated engine runs it: it can lose logs, go back in time, and serve several stores. */
function onEngine(): { makeStore: () => HubStore; options: StoreContractOptions } {
  const engine = new SimulatedEngine();
  return {
    makeStore: () => engine.store(),
    options: {
      loseLog: (topic) => engine.lose(topic),
      rewind: (topic, head) => engine.rewind(topic, head),
      sharedEngine: true,
    },
  };
}

describe('runStoreContract(makeStore, options?)', () => {
  it('passes the memory store, skipping what it cannot do with the reason', async () => {
    const result = await runStoreContract(() => memoryStore(), MEMORY);
    expect(result.failed).toEqual([]);
    expect(result.skipped).toEqual([
      {
        name: check('a listener follows a lost log'),
        reason: 'losesListenedLogs is false: the store never loses a log it listens to',
      },
      {
        name: check('a log gone back in time'),
        reason: 'no rewind option: the engine cannot be taken back in time',
      },
      {
        name: check('appends through two stores'),
        reason: 'sharedEngine is not set: two stores of makeStore() share no log',
      },
      {
        name: check('a listener is handed what another store'),
        reason: 'sharedEngine is not set: two stores of makeStore() share no log',
      },
    ]);
    expect(result.passed).toEqual(
      storeContractChecks.filter((name) => !result.skipped.some((s) => s.name === name)),
    );
  });

  it('passes an engine that keeps every rule, with nothing skipped', async () => {
    const { makeStore, options } = onEngine();
    const result = await runStoreContract(makeStore, options);
    expect(result.failed).toEqual([]);
    expect(result.skipped).toEqual([]);
    expect(result.passed).toEqual(storeContractChecks);
  });

  it('runs only the checks named in `only`, and not those named in `skip`, reporting the others skipped', async () => {
    const [first, second, third] = storeContractChecks;
    const result = await runStoreContract(() => memoryStore(), {
      only: [first!, second!, third!],
      skip: [second!],
    });
    expect(result.passed).toEqual([first, third]);
    expect(result.failed).toEqual([]);
    expect(result.skipped).toContainEqual({ name: second, reason: 'named in the skip option' });
    expect(result.skipped).toContainEqual({
      name: storeContractChecks[3],
      reason: 'not named in the only option',
    });
    expect(result.skipped).toHaveLength(storeContractChecks.length - 2);
  });

  it('rejects bad arguments with TypeErrors naming them, as rejections', async () => {
    const cases: Array<[unknown, unknown, RegExp]> = [
      [
        memoryStore(),
        {},
        /^runStoreContract: expected `makeStore` to be a function that makes a store, got an instance/,
      ],
      [() => memoryStore(), null, /^runStoreContract: expected options to be an object, got null$/],
      [() => memoryStore(), { timeoutMs: 0 }, /expected `timeoutMs` to be a positive number of milliseconds/],
      [
        () => memoryStore(),
        { topicPrefix: '' },
        /expected `topicPrefix` to be a non-empty string, got a string \(""\)$/,
      ],
      [() => memoryStore(), { loseLog: 'delete' }, /expected `loseLog` to be a function, got a string/],
      [() => memoryStore(), { rewind: true }, /expected `rewind` to be a function, got boolean/],
      [
        () => memoryStore(),
        { sharedEngine: 1 },
        /expected `sharedEngine` to be a boolean, got number \(1\)$/,
      ],
      [() => memoryStore(), { losesListenedLogs: 'no' }, /expected `losesListenedLogs` to be a boolean/],
      [
        () => memoryStore(),
        { only: 'append' },
        /expected `only` to be an array of names from storeContractChecks, got a string/,
      ],
      [
        () => memoryStore(),
        { skip: ['no such check'] },
        /expected `skip` to be an array of names from storeContractChecks, got a string \("no such check"\)$/,
      ],
    ];
    for (const [makeStore, options, message] of cases) {
      const run = runStoreContract(makeStore as () => HubStore, options as StoreContractOptions);
      await expect(run).rejects.toThrow(TypeError);
      await expect(run).rejects.toThrow(message);
    }
  });

  it('fails, after timeoutMs, each step of a store that hangs, goes on with the next check, and leaves no rejection unhandled', async () => {
    const late: Array<() => void> = [];
    const hanging = () =>
      forwarding(memoryStore(), {
        // settles only after the run: a rejection nobody awaits any more must not be unhandled
        position: () => new Promise((_, reject) => late.push(() => reject(new Error('too late')))),
      });
    const only = [check('append numbers'), check('ids are'), check('read pages exactly')];
    const result = await runStoreContract(hanging, { timeoutMs: 100, only });
    expect(result.failed.map((failure) => [failure.name, failure.error.message])).toEqual([
      [only[0], expect.stringMatching(/^position\(".*:numbered"\) did not settle within 100 ms$/)],
      [only[1], expect.stringMatching(/^position\(".*:never published"\) did not settle within 100 ms$/)],
    ]);
    expect(result.passed).toEqual([only[2]]);
    for (const reject of late) reject();
    await afterPendingEvents();
  });

  it('fails a check whose store cannot be made, or does not close, saying so', async () => {
    const only = [check('append numbers')];
    const throwing = await runStoreContract(
      () => {
        throw new Error('no engine here');
      },
      { only },
    );
    expect(throwing.failed[0]!.error.message).toBe('makeStore() threw: no engine here');
    const rejecting = await runStoreContract(() => Promise.reject(new Error('no connection')), { only });
    expect(rejecting.failed[0]!.error.message).toBe('makeStore() failed: no connection');
    // a store that comes after the timeout is closed when it comes: nothing of it is left open
    const late = memoryStore();
    const closed = jest.spyOn(late, 'close');
    const made = deferred<HubStore>();
    const tooSlow = await runStoreContract(() => made.promise, { only, timeoutMs: 50 });
    expect(tooSlow.failed[0]!.error.message).toBe(
      'makeStore() failed: makeStore() did not settle within 50 ms',
    );
    made.resolve(late);
    await until(() => closed.mock.calls.length === 1, 'the late store closed');
    const notAStore = await runStoreContract(() => ({ append: () => undefined }) as unknown as HubStore, {
      only,
    });
    expect(notAStore.failed[0]!.error.message).toMatch(
      /^makeStore\(\) gave an object \(\{\}\), with no position\(\) method$/,
    );
    const neverCloses = await runStoreContract(
      () => forwarding(memoryStore(), { close: () => new Promise<void>(() => {}) }),
      { only, timeoutMs: 100 },
    );
    expect(neverCloses.failed[0]!.error.message).toBe('close() did not settle within 100 ms');
    const throwsOnAppend = await runStoreContract(
      () =>
        forwarding(memoryStore(), {
          append: () => {
            throw new TypeError('bad record');
          },
        }),
      { only },
    );
    expect(throwsOnAppend.failed[0]!.error.message).toMatch(
      /^append\(".*:numbered"\) threw synchronously \(a store reports failure as a rejection\): bad record$/,
    );
  });

  it('uses topics under topicPrefix, a different set for each check, and leaves no timer behind', async () => {
    const topics = new Map<number, Set<string>>();
    let made = 0;
    const timers = trackTimers();
    try {
      const result = await runStoreContract(
        () => {
          const index = made++;
          const seen = new Set<string>();
          topics.set(index, seen);
          const store = memoryStore();
          return forwarding(store, {
            append: (topic, record, options) => {
              seen.add(topic);
              return store.append(topic, record, options);
            },
            position: (topic) => {
              seen.add(topic);
              return store.position(topic);
            },
          });
        },
        { topicPrefix: 'mine' },
      );
      expect(result.failed).toEqual([]);
      expect(timers.live()).toBe(0);
    } finally {
      timers.restore();
    }
    const all = [...topics.values()].flatMap((seen) => [...seen]);
    expect(all.length).toBeGreaterThan(20);
    expect(all.every((topic) => topic.startsWith('mine:'))).toBe(true);
    // no topic is used by two stores: each check has its own
    expect(new Set(all).size).toBe(all.length);
  });
});

/** A store that breaks one rule, and the checks that must catch it (the beginnings of their names). */
interface Broken {
  readonly what: string;
  readonly base: 'memory' | 'engine';
  readonly wrap: (store: HubStore) => HubStore;
  readonly fails: readonly string[];
  /** What the failures say, joined. */
  readonly says?: RegExp;
  /** Without the memory store's loseLog hook: a store whose unlisten is broken cannot expire a log through it. */
  readonly noLoseLog?: true;
}

const BROKEN: readonly Broken[] = [
  {
    what: 'skips a seq (5 is never given)',
    base: 'memory',
    wrap: (store) => renumbered(store, (seq) => (seq >= 5 ? seq + 1 : seq)),
    fails: [
      'append numbers',
      'concurrent appends',
      'records come back',
      'read pages exactly',
      "read's position",
      'listen hands over new events only',
    ],
    says: /ten appends, one after another: got seqs \[1–4, 6–11\], expected \[1–10\]/,
  },
  {
    what: 'repeats a seq (4 is given twice)',
    base: 'memory',
    wrap: (store) => renumbered(store, (seq) => (seq >= 5 ? seq - 1 : seq)),
    fails: [
      'append numbers',
      'concurrent appends',
      'records come back',
      'read pages exactly',
      "read's position",
      'listen hands over new events only',
    ],
    says: /ten appends, one after another: got seqs \[1–4, 4–9\], expected \[1–10\]/,
  },
  {
    what: 'loses what is appended between the resolution of listen and its following (a live read begun late)',
    base: 'memory',
    wrap: (store) =>
      forwarding(store, {
        listen: (topic, onEvents) => {
          setTimeout(() => store.listen(topic, onEvents), 30);
          return Promise.resolve();
        },
      }),
    says: /above the head read after listen resolved \(\d+\)/,
    fails: [
      'records come back',
      'the events it hands over',
      'listen hands over new events only',
      'listen on a topic with no log',
      "once listen's promise resolves",
      'events of different topics',
      'unlisten stops',
      "listen's promise settles",
    ],
  },
  {
    what: 'keeps the old epoch after losing its log',
    base: 'memory',
    wrap: (store) => {
      const first = new Map<string, string>();
      return reEpoched(store, (topic, epoch, kind) => {
        if (kind !== 'log') return epoch;
        if (!first.has(topic)) first.set(topic, epoch);
        return first.get(topic)!;
      });
    },
    fails: ['a lost log comes back'],
    says: /the first append after the loss got (\w+)-1: seq 1 of an epoch neither the lost log's \(\1\)/,
  },
  {
    what: 'keeps its emptyEpoch after losing a log',
    base: 'memory',
    wrap: (store) => {
      let empty: string | undefined;
      return reEpoched(store, (_topic, epoch, kind) => {
        if (kind === 'log') return epoch;
        empty ??= epoch;
        return empty;
      });
    },
    fails: ['a lost log comes back'],
    says: /the emptyEpoch once a log was lost: ids <\w+>-0 \(clients placed before the lost log began\) would resume/,
  },
  {
    what: 'names epochs like UUIDs, with dashes',
    base: 'memory',
    wrap: (store) => reEpoched(store, (_topic, epoch) => `${epoch.slice(0, 4)}-${epoch.slice(4)}`),
    fails: ['ids are'],
    says: /makes the id "\w+-\w+-1", which the hub cannot read back/,
  },
  {
    what: 'begins a log when it is positioned (a write per position)',
    base: 'memory',
    wrap: (store) => {
      const begun = new Map<string, string>();
      return reEpoched(store, (topic, epoch, kind) => {
        if (kind === 'none' && !begun.has(topic)) begun.set(topic, token());
        return kind === 'empty' ? epoch : (begun.get(topic) ?? epoch);
      });
    },
    fails: ['position and read of a topic never published', 'a lost log comes back'],
  },
  {
    what: 'answers an append with the head it read before appending (a race under concurrency)',
    base: 'memory',
    wrap: (store) =>
      forwarding(store, {
        append: async (topic, record, options) => {
          const { head } = await store.position(topic);
          await nextTurn();
          const id = await store.append(topic, record, options);
          return id.seq <= head ? id : { epoch: id.epoch, seq: head + 1 };
        },
      }),
    fails: ['concurrent appends'],
  },
  {
    what: 'ignores idempotency keys',
    base: 'memory',
    wrap: (store) =>
      forwarding(store, {
        append: (topic, record) => store.append(topic, record, { idempotencyKey: token() }),
      }),
    fails: ['an idempotency key is applied once: a resend', 'an idempotency key is applied once even when'],
  },
  {
    what: 'keeps one table of keys for every topic',
    base: 'memory',
    wrap: (store) => {
      const seen = new Map<string, LogId>();
      return forwarding(store, {
        append: async (topic, record, options) => {
          const known = seen.get(options.idempotencyKey);
          if (known !== undefined) return known;
          const id = await store.append(topic, record, options);
          seen.set(options.idempotencyKey, id);
          return id;
        },
      });
    },
    fails: ['an idempotency key belongs to its topic'],
  },
  {
    what: 'gives null for the fields a record left out (as a SQL column does)',
    base: 'memory',
    wrap: (store) => {
      const nulled = (record: HubRecord) =>
        ({ event: null, data: null, comment: null, retry: null, ...record }) as unknown as HubRecord;
      const withNulls = <E extends { record: HubRecord }>(event: E) => ({
        ...event,
        record: nulled(event.record),
      });
      return forwarding(store, {
        read: async (topic, after, limit) => {
          const page = await store.read(topic, after, limit);
          return { ...page, events: page.events.map(withNulls) };
        },
        listen: (topic, onEvents) =>
          store.listen(topic, (epoch, events) => onEvents(epoch, events.map(withNulls))),
      });
    },
    fails: ['records come back'],
  },
  {
    what: 'reads from `after` itself (off by one)',
    base: 'memory',
    wrap: (store) =>
      forwarding(store, { read: (topic, after, limit) => store.read(topic, Math.max(0, after - 1), limit) }),
    fails: ['read pages exactly', "read's position"],
  },
  {
    what: 'reads its events and its position apart',
    base: 'memory',
    wrap: (store) =>
      forwarding(store, {
        read: async (topic, after, limit) => {
          const { events } = await store.read(topic, after, limit);
          await nextTurn();
          return { position: await store.position(topic), events };
        },
      }),
    fails: ["read's position"],
  },
  {
    what: 'hands over frozen events',
    base: 'memory',
    wrap: (store) =>
      forwarding(store, {
        read: async (topic, after, limit) => {
          const page = await store.read(topic, after, limit);
          return { ...page, events: page.events.map((event) => Object.freeze({ ...event })) };
        },
      }),
    fails: ['the events it hands over'],
  },
  {
    what: "hands a new listener the log's past first",
    base: 'memory',
    wrap: (store) =>
      forwarding(store, {
        listen: async (topic, onEvents) => {
          const page = await store.read(topic, 0, 10_000);
          if (page.events.length > 0) onEvents(page.position.epoch, page.events);
          return store.listen(topic, onEvents);
        },
      }),
    fails: ['listen hands over new events only', 'unlisten stops'],
  },
  {
    what: 'folds topic names into safe keys (room.* and room.> are one)',
    base: 'memory',
    wrap: (store) => {
      const key = (topic: string) => topic.replace(/[^A-Za-z0-9: ]/g, '_');
      return forwarding(store, {
        append: (topic, record, options) => store.append(key(topic), record, options),
        position: (topic) => store.position(key(topic)),
        read: (topic, after, limit) => store.read(key(topic), after, limit),
        listen: (topic, onEvents) => store.listen(key(topic), onEvents),
        unlisten: (topic) => store.unlisten(key(topic)),
      });
    },
    fails: ['events of different topics'],
  },
  {
    what: 'goes on handing over after unlisten',
    base: 'memory',
    wrap: (store) => forwarding(store, { unlisten: () => undefined }),
    fails: ['unlisten stops'],
    noLoseLog: true,
  },
  {
    what: 'never settles a listen cancelled by unlisten or close',
    base: 'memory',
    wrap: (store) => {
      const starting = new Map<string, NodeJS.Immediate>();
      return forwarding(store, {
        listen: (topic, onEvents) =>
          new Promise<void>((resolve) => {
            starting.set(
              topic,
              setImmediate(() => {
                starting.delete(topic);
                store.listen(topic, onEvents);
                resolve();
              }),
            );
          }),
        unlisten: (topic) => {
          clearImmediate(starting.get(topic));
          store.unlisten(topic);
        },
        close: () => {
          for (const start of starting.values()) clearImmediate(start);
          return store.close();
        },
      });
    },
    fails: ["listen's promise settles", 'close() settles'],
  },
  {
    what: 'counts in stats() with text',
    base: 'memory',
    wrap: (store) => forwarding(store, { stats: () => ({ lag: '5 ms' }) as unknown as StoreStats }),
    fails: ['stats()'],
  },
  {
    what: 'throws synchronously once closed',
    base: 'memory',
    wrap: (store) => {
      let closed = false;
      const open = () => {
        if (closed) throw new Error('the store is closed');
      };
      return forwarding(store, {
        position: (topic) => {
          open();
          return store.position(topic);
        },
        read: (topic, after, limit) => {
          open();
          return store.read(topic, after, limit);
        },
        close: () => {
          closed = true;
          return store.close();
        },
      });
    },
    fails: ['position and read after close()'],
  },
  {
    what: 'hands a listener only the epoch it first saw',
    base: 'engine',
    wrap: (store) =>
      forwarding(store, {
        listen: (topic, onEvents) => {
          let pinned: string | undefined;
          return store.listen(topic, (epoch, events) => {
            pinned ??= epoch;
            if (epoch === pinned) onEvents(epoch, events);
          });
        },
      }),
    fails: ['a listener follows a lost log'],
  },
  {
    what: 'drops what a listener was handed before (a dedupe that eats a log gone back in time)',
    base: 'engine',
    wrap: (store) =>
      forwarding(store, {
        listen: (topic, onEvents) => {
          let last = { epoch: '', seq: 0 };
          return store.listen(topic, (epoch, events) => {
            const fresh = events.filter((event) => epoch !== last.epoch || event.seq > last.seq);
            if (fresh.length === 0) return;
            last = { epoch, seq: fresh[fresh.length - 1]!.seq };
            onEvents(epoch, fresh);
          });
        },
      }),
    fails: ['a log gone back in time'],
  },
  {
    what: 'keeps its idempotency keys in the process, looking a key up before appending (resends race)',
    base: 'engine',
    wrap: (store) => {
      const seen = new Map<string, LogId>();
      return forwarding(store, {
        append: async (topic, record, options) => {
          const key = `${topic}\n${options.idempotencyKey}`;
          const known = seen.get(key);
          if (known !== undefined) return known;
          await nextTurn();
          const id = await store.append(topic, record, { idempotencyKey: token() });
          seen.set(key, id);
          return id;
        },
      });
    },
    fails: ['an idempotency key is applied once even when', 'appends through two stores'],
  },
  {
    what: 'hands its listeners only what it appended itself',
    base: 'engine',
    wrap: (store) => {
      const mine = new Map<
        string,
        (epoch: string, events: readonly { seq: number; record: HubRecord }[]) => void
      >();
      return forwarding(store, {
        append: async (topic, record, options) => {
          const id = await store.append(topic, record, options);
          const listener = mine.get(topic);
          setImmediate(() => {
            if (listener !== undefined && mine.get(topic) === listener)
              listener(id.epoch, [{ seq: id.seq, record }]);
          });
          return id;
        },
        listen: (topic, onEvents) => {
          mine.set(topic, onEvents);
        },
        unlisten: (topic) => {
          mine.delete(topic);
        },
      });
    },
    fails: ['a listener is handed what another store'],
  },
];

describe('runStoreContract fails a broken store on exactly the checks it breaks', () => {
  it.each(BROKEN.map((broken) => [broken.what, broken] as const))(
    'a store that %s',
    async (_what, broken) => {
      const engine = broken.base === 'engine' ? onEngine() : undefined;
      const make = engine?.makeStore ?? (() => memoryStore());
      const options = engine?.options ?? (broken.noLoseLog ? { losesListenedLogs: false } : MEMORY);
      const result = await runStoreContract(() => broken.wrap(make()), { ...options, timeoutMs: 1000 });
      expect(result.failed.map((failure) => failure.name)).toEqual(broken.fails.map(check));
      expect(result.failed.every((failure) => isNativeError(failure.error))).toBe(true);
      if (broken.says)
        expect(result.failed.map((failure) => failure.error.message).join('\n')).toMatch(broken.says);
    },
  );

  it('has a broken store for every check: none passes whatever the store does', () => {
    const caught = new Set(BROKEN.flatMap((broken) => broken.fails.map(check)));
    expect(storeContractChecks.filter((name) => !caught.has(name))).toEqual([]);
  });
});

const redis = requireComponent(`Redis at ${REDIS_URL}`, redisAnswers(), 'REQUIRE_REDIS');

/** Every key of a topic gone, as an eviction, an expiry or a flush takes them. */
async function deleteKeys(admin: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await admin.del(...keys);
  } while (cursor !== '0');
}

const globEscaped = (text: string) => text.replace(/[*?[\]\\]/g, '\\$&');

redis.describe(`runStoreContract on redisStore against a real Redis${redis.label}`, () => {
  afterEach(closeClients);

  it.each(REDIS_CLIENTS.map((client) => [client.label, client] as const))(
    'on %s: every check passes, nothing skipped',
    async (_label, client) => {
      const connect = () => connectRedis(client);
      const prefix = uniquePrefix();
      const admin = ioredisClient();
      try {
        await expectRedisContract(async () => redisStore(await connect(), { prefix }), admin, prefix);
      } finally {
        await deleteKeys(admin, `${globEscaped(`{${prefix}:`)}*`);
      }
    },
    60_000,
  );
});
