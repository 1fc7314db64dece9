/**
 * Distributed training: process groups, collectives and the launcher's environment.
 * @packageDocumentation
 */
export { init, destroy, isInitialized, rank, worldSize, localRank, backend, ncclVersion } from './group';
export type { Backend, InitOptions } from './group';
export { allReduce, allGather, reduceScatter, broadcast, barrier, send, recv } from './collectives';
export type { ReduceOp, CollectiveOptions, AllGatherOptions, ReduceScatterOptions } from './collectives';
export { Work } from './work';
export { TCPStore } from './store';
export type { TCPStoreOptions } from './store';
export { launch } from './launch';
