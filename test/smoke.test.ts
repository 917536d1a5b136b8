import { describe, expect, it } from 'vitest';
import { formatSegmentKey, parseSegmentKey } from '../src/core/objectKeys.ts';

describe('smoke', () => {
  it('formats and parses a key', () => {
    const key = formatSegmentKey('', { dataspace: 'd', segmentId: 's' });
    expect(key).toBe('ef26/bks/d/s');
    expect(parseSegmentKey('', key)).toEqual({ dataspace: 'd', segmentId: 's' });
  });
});
