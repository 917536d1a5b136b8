/**
 * The watch loop of `bucket-storage ship --watch DIR`: list the segment files, wait until each has settled,
 * stage it, announce it, record it. Per cycle, complete segments go in groups of at most 10 (oldest first):
 * each group is staged with at most `concurrency` files in flight (memory: concurrency × part size × transfer
 * concurrency), announced with one SendMessageBatch, recorded in the state, and the state saved before the
 * next group. A segment is recorded only once SQS took its announcement, so a crash never loses one; a crash
 * between SendMessageBatch's answer and the state's rename announces that group's segments again on restart
 * (the upload acknowledges a segment already stored), and nothing else. A segment whose staging or
 * announcement failed is tried again in a later cycle, with back-off.
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { Config } from '../core/config.ts';
import { segmentAnnouncementSchema, type SegmentAnnouncement } from '../core/messages.ts';
import { sendMessages } from '../core/queues.ts';
import { listSegments, segmentName, type Layout, type SegmentFile } from './layout.ts';
import { SettleTracker } from './settle.ts';
import type { ShipState } from './shipState.ts';
import type { Staged, Stager } from './stage.ts';

/** What the shipper tells its caller (the progress line, the stdout record, the tests). */
export interface ShipEvents {
  staging?(file: SegmentFile): void;
  progress?(file: SegmentFile, bytes: number): void;
  announced?(file: SegmentFile, announcement: SegmentAnnouncement): void;
  failed?(file: SegmentFile, error: unknown): void;
  cycle?(totals: ShipTotals): void;
}

export interface ShipTotals {
  announced: number;
  failed: number;
  /** Segment files seen but not complete yet (still changing) at the end of the last cycle. */
  waiting: number;
}

export interface ShipOptions {
  readonly layout: Layout;
  readonly stager: Stager;
  /** What was announced (watch mode); `ship FILE` keeps none. */
  readonly state?: ShipState | undefined;
  readonly sqs: SQSClient;
  readonly config: Pick<Config, 'segmentsQueueUrl' | 'deletionsQueueUrl'>;
  readonly settleMs: number;
  readonly concurrency: number;
  /** One cycle, then return (ship what is complete). */
  readonly once: boolean;
  readonly signal?: AbortSignal;
  readonly pollMs?: number;
  readonly events?: ShipEvents;
  readonly now?: () => number;
}

const GROUP = 10;
const MAX_BACKOFF_MS = 300_000;

/** Runs `fn` over `items` with at most `limit` at a time; settles every one. */
async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<PromiseSettledResult<R>[]> {
  const results: PromiseSettledResult<R>[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      const item = items[i] as T;
      results[i] = await fn(item).then(
        (value) => ({ status: 'fulfilled', value }) as const,
        (reason: unknown) => ({ status: 'rejected', reason }) as const,
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });

export class Shipper {
  private readonly settle: SettleTracker;
  private readonly backoff = new Map<string, { attempts: number; until: number }>();
  private readonly totals: ShipTotals = { announced: 0, failed: 0, waiting: 0 };
  private readonly now: () => number;

  constructor(private readonly options: ShipOptions) {
    this.now = options.now ?? Date.now;
    this.settle = new SettleTracker(options.settleMs, this.now);
  }

  /** Cycles until the signal aborts (or once); resolves to the totals. */
  async run(): Promise<ShipTotals> {
    const { signal } = this.options;
    const pollMs = this.options.pollMs ?? Math.max(200, Math.min(2_000, this.options.settleMs / 2));
    for (;;) {
      await this.cycle();
      this.options.events?.cycle?.({ ...this.totals });
      if (this.options.once || signal?.aborted) return { ...this.totals };
      await sleep(pollMs, signal);
      if (signal?.aborted) return { ...this.totals };
    }
  }

  /** Ships these files now, settled or not (`ship FILE`); resolves to the totals. */
  async shipFiles(files: readonly SegmentFile[]): Promise<ShipTotals> {
    for (let i = 0; i < files.length; i += GROUP) await this.shipGroup(files.slice(i, i + GROUP));
    return { ...this.totals };
  }

  private async cycle(): Promise<void> {
    const { state } = this.options;
    if (state === undefined) throw new Error('Shipper: watching needs a state');
    const files = await listSegments(this.options.layout);
    const present = new Set(files.map((f) => segmentName(f.identity)));
    const pruned = state.prune(present);
    const pending = files.filter((f) => !state.has(segmentName(f.identity)));
    const pendingPaths = new Set(pending.map((f) => f.path));
    this.settle.retain(pendingPaths);
    for (const path of this.backoff.keys()) if (!pendingPaths.has(path)) this.backoff.delete(path);
    const now = this.now();
    const complete = pending.filter((f) => (this.backoff.get(f.path)?.until ?? 0) <= now && this.settle.isComplete(f)).sort((a, b) => a.mtimeMs - b.mtimeMs);
    this.totals.waiting = pending.length - complete.length;
    if (pruned > 0 && complete.length === 0) await state.save();
    for (let i = 0; i < complete.length && !this.options.signal?.aborted; i += GROUP) await this.shipGroup(complete.slice(i, i + GROUP));
  }

  private async shipGroup(group: readonly SegmentFile[]): Promise<void> {
    const { stager, events, signal } = this.options;
    const staged = await mapLimited(group, this.options.concurrency, (file) => {
      events?.staging?.(file);
      return stager.stage(file, { ...(signal ? { signal } : {}), onProgress: (bytes) => events?.progress?.(file, bytes) });
    });
    const ready: { file: SegmentFile; staged: Staged; announcement: SegmentAnnouncement }[] = [];
    for (const [i, file] of group.entries()) {
      const result = staged[i];
      if (result === undefined) continue;
      if (result.status === 'rejected') this.fail(file, result.reason);
      else ready.push({ file, staged: result.value, announcement: { version: 1, ...file.identity, source: result.value.source, size: result.value.size, sha256: result.value.sha256 } });
    }
    if (ready.length === 0) return;
    let refused: Map<string, string>;
    try {
      refused = await sendMessages(this.options.sqs, this.options.config, { queue: 'segments', schema: segmentAnnouncementSchema, what: 'segment announcement', messages: new Map(ready.map((r, i) => [`a${i}`, r.announcement])) });
    } catch (err) {
      for (const r of ready) this.fail(r.file, err);
      return;
    }
    const at = new Date(this.now()).toISOString();
    const sent = ready.filter((r, i) => {
      const why = refused.get(`a${i}`);
      if (why !== undefined) this.fail(r.file, new Error(`SQS refused the announcement: ${why}`));
      return why === undefined;
    });
    const { state } = this.options;
    if (state !== undefined) {
      for (const r of sent) state.record(segmentName(r.file.identity), { size: r.staged.size, sha256: r.staged.sha256, at });
      await state.save();
    }
    for (const r of sent) {
      this.backoff.delete(r.file.path);
      this.totals.announced++;
      events?.announced?.(r.file, r.announcement);
    }
  }

  private fail(file: SegmentFile, error: unknown): void {
    const attempts = (this.backoff.get(file.path)?.attempts ?? 0) + 1;
    this.backoff.set(file.path, { attempts, until: this.now() + Math.min(MAX_BACKOFF_MS, 1000 * 2 ** attempts) });
    this.totals.failed++;
    this.options.events?.failed?.(file, error);
  }
}
