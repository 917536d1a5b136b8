/**
 * Turns received deletion announcements into a deletion mark: up to 1,000 distinct segments are gathered, the
 * mark is written (conditional create), and only then are their messages removed from the queue. A kill before
 * the mark is stored loses nothing (the messages come back after their visibility timeout); a kill after it
 * leaves the messages to be marked again (a second mark of the same segments: carrying out a deletion twice
 * changes nothing, and an upload announcement cancels the segment in every pending mark).
 */
import { MAX_SEGMENTS_PER_MARK, identityId, type DeletionMarks } from '../core/deletionMarks/index.ts';
import { errorFields, logger } from '../core/logger.ts';
import type { DeletionsQueue, ReceivedDeletion } from './deletionsQueue.ts';

export interface MarkingCounts {
  /** Distinct segments recorded in marks written by this run. */
  marked: number;
  marksWritten: number;
  /** Messages removed from the queue (their deletion is recorded in a mark). */
  completed: number;
  /** Messages left on the queue (dry run, or the mark or the acknowledgement failed). */
  left: number;
  /** The earliest due time of the marks written, if any. */
  earliestDue: Date | undefined;
  failures: string[];
}

export class MarkingBatch {
  readonly counts: MarkingCounts = { marked: 0, marksWritten: 0, completed: 0, left: 0, earliestDue: undefined, failures: [] };
  #pending: ReceivedDeletion[] = [];
  readonly #segments = new Set<string>();

  constructor(
    private readonly marks: DeletionMarks,
    private readonly queue: DeletionsQueue,
    private readonly delayHours: number,
    private readonly dryRun: boolean,
  ) {}

  /** Adds received deletions; writes a mark once a full one is gathered. */
  async add(deletions: readonly ReceivedDeletion[], now: Date): Promise<void> {
    for (const d of deletions) {
      if (!this.#segments.has(identityId(d.identity)) && this.#segments.size >= MAX_SEGMENTS_PER_MARK) await this.flush(now);
      this.#pending.push(d);
      this.#segments.add(identityId(d.identity));
    }
  }

  /** Writes the mark of the gathered deletions, then removes their messages from the queue. */
  async flush(now: Date): Promise<void> {
    const batch = this.#pending;
    this.#pending = [];
    this.#segments.clear();
    if (batch.length === 0) return;
    if (this.dryRun) {
      logger.info('cleanup dry run: would mark for deletion', { segments: new Set(batch.map((d) => identityId(d.identity))).size, sample: batch.slice(0, 10).map((d) => identityId(d.identity)) });
      this.counts.left += batch.length;
      return;
    }
    try {
      const mark = await this.marks.create(batch.map((d) => d.identity), now, this.delayHours);
      this.counts.marked += mark.doc.segments.length;
      this.counts.marksWritten++;
      const due = new Date(mark.doc.due);
      if (this.counts.earliestDue === undefined || due < this.counts.earliestDue) this.counts.earliestDue = due;
    } catch (err) {
      // Nothing recorded: the messages stay and come back after their visibility timeout.
      this.counts.left += batch.length;
      this.counts.failures.push(`deletion mark in ${this.marks.where}: ${String(errorFields(err).errorMessage)}`);
      logger.error('cleanup could not write a deletion mark; its messages stay on the queue', { segments: batch.length, ...errorFields(err) });
      return;
    }
    const confirmed = await this.queue.acknowledge(batch);
    this.counts.completed += confirmed;
    this.counts.left += batch.length - confirmed;
  }
}
