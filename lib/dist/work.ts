/** @internal What a Work needs of its process group. */
export interface WorkOwner {
  /** Works issued and not settled yet, by id. */
  readonly pending: Map<number, Work<unknown>>;
  /**
   * Blocks until the native work is done and throws its error (true), or makes the device's
   * current stream wait for it (false: its outcome is reported later).
   */
  waitNative(id: number): boolean;
}

/**
 * A distributed operation queued on the process group's comm thread (Gloo) or comm stream (NCCL).
 * `await work` (a Work is a thenable) gives its result once it finished, or throws its error:
 * ERR_TIMEOUT / ERR_DIST naming the operation, its sequence number and the ranks that did not
 * arrive. `work.wait()` gives the result for use by the ops that follow: on CPU tensors (Gloo) it
 * blocks the JS thread until the operation finished and throws its error; on CUDA tensors (NCCL)
 * it makes the device's current stream wait for the collective and returns at once, as
 * PyTorch's `work.wait()` does, so the ops issued between the collective and `wait()` overlap
 * the communication (a failure found later is raised by `await work`, if awaited, and by the next
 * operation on the group, which is then unusable). A barrier's `wait()` always blocks. A failure
 * that nobody waits for is not reported as an unhandled rejection; the next operation then fails
 * because the group is unusable.
 */
export class Work<T> implements PromiseLike<T> {
  private settled = false;
  private error: Error | null = null;
  private promise: Promise<T> | null = null;
  private resolvePromise: ((value: T) => void) | null = null;
  private rejectPromise: ((error: Error) => void) | null = null;

  /** @internal */
  constructor(
    private readonly owner: WorkOwner,
    /** @internal */ readonly id: number,
    private readonly value: T,
  ) {
    owner.pending.set(id, this as Work<unknown>);
  }

  /** Whether the operation finished (successfully or not) as far as this thread knows. */
  get isCompleted(): boolean {
    return this.settled;
  }

  /**
   * The result, for the ops issued from now on: blocks until the operation finished (Gloo, and
   * barriers) and throws its error, or orders the device's current stream after it (NCCL).
   */
  wait(): T {
    if (!this.settled) {
      try {
        if (this.owner.waitNative(this.id)) this._settle(null);
      } catch (e) {
        this._settle(e as Error);
      }
    }
    if (this.error) throw this.error;
    return this.value;
  }

  then<A = T, B = never>(
    onFulfilled?: ((value: T) => A | PromiseLike<A>) | null,
    onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.asPromise().then(onFulfilled, onRejected);
  }

  /** The operation as a Promise (made on first use, so an unawaited failure rejects nothing). */
  asPromise(): Promise<T> {
    if (this.promise === null) {
      this.promise = new Promise<T>((resolve, reject) => {
        this.resolvePromise = resolve;
        this.rejectPromise = reject;
      });
      if (this.settled) this.deliver();
    }
    return this.promise;
  }

  /** @internal Called once the native side reported (or wait() saw) the outcome. */
  _settle(error: Error | null): void {
    if (this.settled) return;
    this.settled = true;
    this.error = error;
    this.owner.pending.delete(this.id);
    if (this.promise !== null) this.deliver();
  }

  private deliver(): void {
    if (this.error) this.rejectPromise!(this.error);
    else this.resolvePromise!(this.value);
  }
}
