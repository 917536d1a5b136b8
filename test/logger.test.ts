/**
 * Human output where a human reads: readable lines on a terminal, JSON lines otherwise or with LOG_FORMAT=json.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../src/core/config.ts';
import { applyLogFormat, logger, textLine } from '../src/core/logger.ts';

afterEach(() => {
  vi.restoreAllMocks();
  applyLogFormat('json');
});

function captured(): { lines: string[] } {
  const lines: string[] = [];
  const capture = (chunk: string | Uint8Array) => (lines.push(String(chunk)), true);
  vi.spyOn(process.stdout, 'write').mockImplementation(capture);
  vi.spyOn(process.stderr, 'write').mockImplementation(capture);
  return { lines };
}

describe('log format', () => {
  it('text on a terminal, JSON when piped, LOG_FORMAT wins', () => {
    expect(applyLogFormat(undefined, { isTTY: true })).toBe('text');
    expect(applyLogFormat(undefined, { isTTY: false })).toBe('json');
    expect(applyLogFormat('json', { isTTY: true })).toBe('json');
    expect(applyLogFormat('text', {})).toBe('text');
    const base = { S3_STORAGE_BUCKET: 'b-1', S3_STORAGE_REGION: 'eu-west-1', S3_STORAGE_ENCRYPTION_KEY: 'off' };
    expect(loadConfig({ ...base, LOG_FORMAT: 'JSON' }).logFormat).toBe('json');
    expect(() => loadConfig({ ...base, LOG_FORMAT: 'yaml' })).toThrow(/LOG_FORMAT="yaml" is not a log format; expected json or text/);
  });

  it('a text line: time, level, message, then the fields (Powertools keys left out)', () => {
    applyLogFormat('text', {});
    const { lines } = captured();
    logger.warn('bucket storage size', { bucket: 'logs-2026', segmentObjects: 3, note: 'two words' });
    vi.restoreAllMocks();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d WARN {2}bucket storage size {2}bucket=logs-2026 {2}segmentObjects=3 {2}note="two words"\n$/);
    expect(textLine({ level: 'INFO', message: 'm', service: 'bucket-storage', cold_start: true, x: { a: 1 } }, new Date(2026, 0, 1, 9, 8, 7))).toBe('09:08:07 INFO  m  x={"a":1}');
  });

  it('a JSON line otherwise', () => {
    applyLogFormat('json', {});
    const { lines } = captured();
    logger.warn('w', { k: 1 });
    vi.restoreAllMocks();
    expect(JSON.parse(lines.join(''))).toMatchObject({ level: 'WARN', message: 'w', k: 1, service: 'bucket-storage' });
  });
});
