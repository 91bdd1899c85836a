export type { IoRedisLike, NodeRedisLike, RedisClientLike } from './client';
export type { RedisStoreOptions } from './store';
export { redisStore } from './store';
