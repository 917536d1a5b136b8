/**
 * When a segment file is complete: once it has not changed (size and mtime) for `settleMs`. A file whose mtime
 * is already that old when first seen (after a restart, or with --once) is complete at once; one that is still
 * changing is watched until it stops. Memory: one entry per incomplete file, dropped when it is shipped or gone.
 */
import type { SegmentFile } from './layout.ts';

export class SettleTracker {
  private readonly seen = new Map<string, { size: number; mtimeMs: number; since: number }>();
  constructor(
    private readonly settleMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  isComplete(file: Pick<SegmentFile, 'path' | 'size' | 'mtimeMs'>): boolean {
    const now = this.now();
    const before = this.seen.get(file.path);
    if (before === undefined && now - file.mtimeMs >= this.settleMs) return true;
    if (before === undefined || before.size !== file.size || before.mtimeMs !== file.mtimeMs) {
      this.seen.set(file.path, { size: file.size, mtimeMs: file.mtimeMs, since: now });
      return false;
    }
    return now - before.since >= this.settleMs;
  }

  /** Forgets every file but those in `paths` (shipped or gone ones). */
  retain(paths: ReadonlySet<string>): void {
    for (const path of this.seen.keys()) if (!paths.has(path)) this.seen.delete(path);
  }

  /** Files seen changing and not yet complete. */
  get waiting(): number {
    return this.seen.size;
  }
}
