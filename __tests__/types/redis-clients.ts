// Compiled by `npm run typecheck`: every client major the peer ranges name is accepted by redisStore()
// as its own types declare it (ioredis 4 ships none), a Cluster client as well as a plain one, and what
// is not a client is refused.
import Redis, { Cluster } from 'ioredis';
import Redis5, { Cluster as Cluster5 } from 'ioredis5';
import { createClient, createCluster } from 'redis';
import { createClient as createClient4, createCluster as createCluster4 } from 'redis4';
import { createClient as createClient5, createCluster as createCluster5 } from 'redis5';
import { redisStore } from '../../lib/redis';

export async function stores() {
  const node6 = createClient();
  const node5 = createClient5();
  const node4 = createClient4();
  await Promise.all([node6.connect(), node5.connect(), node4.connect()]);
  return [
    redisStore(new Redis()),
    redisStore(new Redis5()),
    redisStore(node6),
    redisStore(node5),
    redisStore(node4),
    redisStore(new Cluster([{ host: '127.0.0.1', port: 7000 }])),
    redisStore(new Cluster5([{ host: '127.0.0.1', port: 7000 }])),
    redisStore(createCluster({ rootNodes: [{ url: 'redis://127.0.0.1:7000' }] })),
    redisStore(createCluster5({ rootNodes: [{ url: 'redis://127.0.0.1:7000' }] })),
    redisStore(createCluster4({ rootNodes: [{ url: 'redis://127.0.0.1:7000' }] })),
    // @ts-expect-error a URL is not a client
    redisStore('redis://127.0.0.1:6379'),
  ];
}
