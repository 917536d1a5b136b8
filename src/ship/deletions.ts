/**
 * `bucket-storage ship --deleted FILE|-`: deletion announcements for a list of segments, one per line as
 * `<dataspace>/<segmentId>` (or a bare `<segmentId>` with --dataspace), in batches of 10 (SendMessageBatch).
 * Blank lines and lines starting with `#` are skipped. Reads the list as a stream: memory holds one batch.
 * A bad line or an entry SQS refuses is reported and counted; the others are sent.
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import { createInterface } from 'node:readline';
import type { Config } from '../core/config.ts';
import { deletionAnnouncementSchema, parseWith } from '../core/messages.ts';
import { sendMessages } from '../core/queues.ts';

export interface DeletionTotals {
  announced: number;
  /** "line N: why", for the lines not announced. */
  readonly problems: string[];
}

/** The deletion announcement a list line names, or a string saying what is wrong with it. */
function parseLine(line: string, dataspace: string | undefined): unknown {
  if (dataspace !== undefined) return { version: 1, dataspace, segmentId: line };
  const slash = line.indexOf('/');
  if (slash === -1) return 'expected <dataspace>/<segmentId> (or pass --dataspace)';
  return { version: 1, dataspace: line.slice(0, slash), segmentId: line.slice(slash + 1) };
}

export async function announceDeletions(input: NodeJS.ReadableStream, sqs: SQSClient, config: Pick<Config, 'segmentsQueueUrl' | 'deletionsQueueUrl'>, dataspace?: string): Promise<DeletionTotals> {
  const totals: DeletionTotals = { announced: 0, problems: [] };
  const batch = new Map<string, unknown>();
  const flush = async () => {
    if (batch.size === 0) return;
    const refused = await sendMessages(sqs, config, { queue: 'deletions', schema: deletionAnnouncementSchema, what: 'deletion announcement', messages: batch });
    for (const [id, why] of refused) totals.problems.push(`${id.replace('l', 'line ')}: SQS refused it: ${why}`);
    totals.announced += batch.size - refused.size;
    batch.clear();
  };
  let n = 0;
  for await (const raw of createInterface({ input, crlfDelay: Infinity })) {
    n++;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const message = parseLine(line, dataspace);
    if (typeof message === 'string') {
      totals.problems.push(`line ${n}: ${message}`);
      continue;
    }
    try {
      parseWith(deletionAnnouncementSchema, message, 'deletion announcement');
    } catch (err) {
      totals.problems.push(`line ${n}: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    batch.set(`l${n}`, message);
    if (batch.size === 10) await flush();
  }
  await flush();
  return totals;
}
