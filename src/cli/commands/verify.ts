/**
 * `verify [--dataspace D [--segment S]] [--metadata] [--expect FILE] [--concurrency N]`: checks that what is
 * stored is intact (src/verify/verifySegments.ts). Prints a summary naming every missing, corrupt or
 * unreadable object; exit status 1 when there is any. `--expect FILE` (`-` for stdin) lists the segments that
 * must exist, one `dataspace/segmentId` a line: each one in no registered bucket is reported missing.
 */
import { readFile } from 'node:fs/promises';
import { text } from 'node:stream/consumers';
import { createRuntime } from '../../core/runtime.ts';
import type { SegmentIdentity } from '../../core/objectKeys.ts';
import { verifySegments, type VerifyReport } from '../../verify/verifySegments.ts';
import { UsageError, type Command, type CommandContext } from '../command.ts';
import { formatBytes, ProgressLine } from '../terminal.ts';

/** `dataspace/segmentId` lines (blank lines and # comments skipped). */
function parseExpected(lines: string): SegmentIdentity[] {
  return lines
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const [dataspace, segmentId, extra] = l.split('/');
      if (!dataspace || !segmentId || extra !== undefined) throw new UsageError(`--expect: ${JSON.stringify(l)} is not dataspace/segmentId`);
      return { dataspace, segmentId };
    });
}

async function expectedFrom(ctx: CommandContext): Promise<SegmentIdentity[] | undefined> {
  const file = ctx.values.expect;
  if (typeof file !== 'string') return undefined;
  return parseExpected(file === '-' ? await text(ctx.stdin) : await readFile(file, 'utf8'));
}

function optionalString(ctx: CommandContext, name: string): string | undefined {
  const v = ctx.values[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function summary(report: VerifyReport, metadataOnly: boolean): string {
  const counts = { missing: 0, corrupt: 0, unreadable: 0 };
  for (const f of report.findings) counts[f.kind]++;
  const how = metadataOnly ? 'metadata only, no body read' : `read and authenticated, ${formatBytes(report.bytesRead)}`;
  const head = `verified ${report.checked} objects in ${report.buckets} bucket${report.buckets === 1 ? '' : 's'} (${how}): ${report.checked - counts.corrupt - counts.unreadable} intact, ${counts.missing} missing, ${counts.corrupt} corrupt, ${counts.unreadable} unreadable`;
  const lines = report.findings.map((f) => `${f.kind.padEnd(10)} ${f.identity.dataspace}/${f.identity.segmentId}  ${f.where}  ${f.reason}`);
  return [head, ...lines].join('\n') + '\n';
}

export const verifyCommand: Command = {
  summary: 'checks stored segments: --metadata (HEAD only) or, by default, reads and authenticates every chunk',
  usage: 'verify [--dataspace D [--segment S]] [--metadata] [--expect FILE] [--concurrency N]',
  options: { dataspace: { type: 'string' }, segment: { type: 'string' }, metadata: { type: 'boolean' }, expect: { type: 'string' }, concurrency: { type: 'string' } },
  async run(ctx) {
    const dataspace = optionalString(ctx, 'dataspace');
    const segmentId = optionalString(ctx, 'segment');
    if (segmentId !== undefined && dataspace === undefined) throw new UsageError('--segment needs --dataspace');
    const concurrency = optionalString(ctx, 'concurrency');
    if (concurrency !== undefined && !/^([1-9]|[1-9]\d|1\d\d|2[0-4]\d|25[0-6])$/.test(concurrency)) throw new UsageError(`--concurrency ${concurrency}: expected 1..256`);
    const metadataOnly = ctx.values.metadata === true;
    const expected = await expectedFrom(ctx);
    const runtime = await createRuntime(ctx.env);
    const progress = new ProgressLine(ctx.stderr);
    const report = await verifySegments(runtime, {
      metadataOnly,
      dataspace,
      segmentId,
      expected,
      ...(concurrency !== undefined ? { concurrency: Number(concurrency) } : {}),
      onProgress: (p) => progress.update(`verifying: ${p.checked}/${p.total} objects, ${formatBytes(p.bytesRead)} read, ${p.findings} problem${p.findings === 1 ? '' : 's'}`, p.checked === p.total),
    });
    progress.done();
    ctx.stdout.write(summary(report, metadataOnly));
    return report.findings.length > 0 ? 1 : 0;
  },
};
