/**
 * The metrics' own arithmetic and dimension sets, without a function around them: one dimension set unless a
 * failure's detail adds the second, throughput only for real uploads and never a division by zero, the age of
 * an announcement only from a real SentTimestamp. Written for the survivors of the mutation run `s3core2`
 * (docs/MUTATION.md); test/metrics.test.ts reads the same lines from whole invocations.
 */
import { describe, expect, it } from 'vitest';
import { ageOf, recordRestore, recordUpload, recordUploadFailure } from '../src/core/metrics.ts';
import { TruncatedError } from '../src/core/errors.ts';
import { capturedOutput } from './support/capturedOutput.ts';

interface Emf {
  readonly _aws: { readonly CloudWatchMetrics: readonly { readonly Dimensions: readonly string[][]; readonly Metrics: readonly { Name: string }[] }[] };
  readonly [key: string]: unknown;
}

/** The EMF lines `record` writes (Powertools Metrics writes them to stdout). */
async function emfOf(record: () => void): Promise<Emf[]> {
  return (await capturedOutput(record)).split('\n').filter((l) => l.startsWith('{"_aws"')).map((l) => JSON.parse(l) as Emf);
}

const only = (lines: Emf[]): Emf => {
  expect(lines).toHaveLength(1);
  return lines[0]!;
};
const names = (line: Emf) => line._aws.CloudWatchMetrics[0]!.Metrics.map((m) => m.Name).sort();

describe('metrics', () => {
  it('an upload: one dimension set; throughput in MiB/s for an upload, none for a segment already stored', async () => {
    const MiB = 1024 * 1024;
    const uploaded = only(await emfOf(() => recordUpload({ outcome: 'uploaded', bytes: 8 * MiB, seconds: 2, announcementAge: 3 })));
    expect(uploaded._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([['service', 'function', 'outcome']]);
    expect(uploaded).toMatchObject({ UploadThroughput: 4, AnnouncementAge: 3, SegmentBytes: 8 * MiB });
    const stored = only(await emfOf(() => recordUpload({ outcome: 'already-stored', bytes: MiB, seconds: 1, announcementAge: undefined })));
    expect(names(stored)).toEqual(['SegmentBytes', 'Segments', 'UploadSeconds']);
  });

  it('a failure adds a second dimension set with its detail', async () => {
    const failed = only(await emfOf(() => recordUploadFailure(new TruncatedError('short'))));
    expect(failed._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([['service', 'function', 'outcome'], ['service', 'function', 'outcome', 'errorCode']]);
    expect(failed).toMatchObject({ errorCode: 'TRUNCATED', outcome: 'failed' });
  });

  it('a restore that took no measurable time has a throughput of 0, not Infinity', async () => {
    expect(only(await emfOf(() => recordRestore({ read: 'whole', bytes: 10, seconds: 0 })))).toMatchObject({ RestoreThroughput: 0 });
  });

  it('the age of an announcement: from a SentTimestamp in ms, never negative; none without a number', () => {
    expect(ageOf('1000', 4500)).toBe(3.5);
    expect(ageOf('9000', 4500)).toBe(0);
    expect(ageOf(undefined, 4500)).toBeUndefined();
    expect(ageOf('not a number', 4500)).toBeUndefined();
  });
});
