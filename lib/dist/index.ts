/**
 * Distributed training: process groups, collectives, the launcher's environment and sharded
 * frozen weights.
 * @packageDocumentation
 */
export { init, destroy, isInitialized, rank, worldSize, localRank, localWorldSize, backend, ncclVersion } from './group';
export type { Backend, InitOptions } from './group';
export { allReduce, allGather, reduceScatter, broadcast, barrier, send, recv } from './collectives';
export type { ReduceOp, CollectiveOptions, AllGatherOptions, ReduceScatterOptions } from './collectives';
export { Work } from './work';
export { TCPStore } from './store';
export type { TCPStoreOptions } from './store';
export { launch } from './launch';
export { DistributedDataParallel } from './ddp';
export type { DistributedDataParallelOptions, SyncStats } from './ddp';
export { ZeroRedundancyOptimizer, partitionBySize } from './zero';
export type { OptimizerClass, ZeroOptions } from './zero';
export { shardFrozenWeights, ShardedWeights } from './fsdp';
export type { ShardOptions, ShardStats } from './fsdp';
