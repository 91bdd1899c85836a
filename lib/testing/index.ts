export type { StoreContractOptions, StoreContractResult } from './contract';
export { runStoreContract, storeContractChecks } from './contract';
