/** The progress line of `ship` (and its notes): rewritten in place on a terminal, silent elsewhere. */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ProgressLine } from '../src/cli/progressLine.ts';

function stream(tty: boolean): PassThrough & { isTTY?: boolean } {
  const s: PassThrough & { isTTY?: boolean } = new PassThrough();
  if (tty) s.isTTY = true;
  return s;
}

describe('ProgressLine', () => {
  it('on a terminal: one line rewritten in place, notes above it, a final newline', () => {
    const out = stream(true);
    const line = new ProgressLine(out);
    line.update('ship: 1 announced');
    line.update('ship: 2 announced'); // within 200 ms: not drawn, but kept for the end
    line.note('logs/seg-1 not announced');
    line.end();
    expect(String(out.read())).toBe('\r\x1b[Kship: 1 announced\r\x1b[Klogs/seg-1 not announced\nship: 2 announced\r\x1b[Kship: 2 announced\n');
  });

  it('off a terminal: nothing', () => {
    const out = stream(false);
    const line = new ProgressLine(out);
    line.update('ship: 1 announced');
    line.note('x');
    line.end();
    expect(out.read()).toBeNull();
  });
});
