/** @internal What a Work needs of its process group. */
export interface WorkOwner {
  /** Works issued and not settled yet, by id. */
  readonly pending: Map<number, Work<unknown>>;
  /** Blocks until the native work is done; throws its error. */
  waitNative(id: number): void;
}

/**
 * A distributed operation queued on the process group's comm thread. `await work` (a Work is a
 * thenable) or `work.wait()` (blocks the JS thread) gives its result, or throws its error:
 * ERR_TIMEOUT / ERR_DIST naming the operation, its sequence number and the ranks that did not
 * arrive. A failure that nobody waits for is not reported as an unhandled rejection; the next
 * operation then fails because the group is unusable.
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

  /** Blocks until the operation finished; returns its result or throws its error. */
  wait(): T {
    if (!this.settled) {
      try {
        this.owner.waitNative(this.id);
        this._settle(null);
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
