/** Every mark read at once (operator commands: `status`, `undelete`), and the pending deletions in figures. */
import { errorFields } from '../logger.ts';
import { identityId } from './document.ts';
import type { DeletionMarks, ReadMark } from './markStore.ts';

export interface AllMarks {
  readonly read: readonly ReadMark[];
  /** Marks that cannot be parsed (left in place; cleanup reports them too). */
  readonly damaged: readonly { readonly key: string; readonly error: string }[];
}

/** Reads every mark, `concurrency` at a time. */
export async function readAllMarks(marks: Pick<DeletionMarks, 'all' | 'read'>, concurrency = 8): Promise<AllMarks> {
  const listed = await marks.all();
  const read: ReadMark[] = [];
  const damaged: { key: string; error: string }[] = [];
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < listed.length; i = next++) {
      const key = listed[i]?.key;
      if (key === undefined) continue;
      try {
        const mark = await marks.read(key);
        if (mark !== undefined) read.push(mark);
      } catch (err) {
        damaged.push({ key, error: String(errorFields(err).errorMessage) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, listed.length) }, worker));
  read.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { read, damaged };
}

export interface PendingSummary {
  /** Distinct segments whose deletion is pending (cancellable). */
  readonly pending: number;
  /** Distinct segments whose deletion is being carried out (claimed marks). */
  readonly applying: number;
  /** Marks in the state bucket (empty ones included: cleanup removes them when due). */
  readonly marks: number;
  /** When the oldest pending deletion was recorded (ISO), if any. */
  readonly oldest: string | undefined;
  /** When the next deletion falls due (ISO), if any. */
  readonly nextDue: string | undefined;
  readonly damaged: readonly { readonly key: string; readonly error: string }[];
}

export function summarise(all: AllMarks): PendingSummary {
  const pending = new Set<string>();
  const applying = new Set<string>();
  let oldest: string | undefined;
  let nextDue: string | undefined;
  for (const { doc } of all.read) {
    if (doc.segments.length === 0) continue;
    for (const s of doc.segments) (doc.state === 'pending' ? pending : applying).add(identityId(s));
    if (oldest === undefined || doc.created < oldest) oldest = doc.created;
    if (nextDue === undefined || doc.due < nextDue) nextDue = doc.due;
  }
  return { pending: pending.size, applying: applying.size, marks: all.read.length + all.damaged.length, oldest, nextDue, damaged: all.damaged };
}
