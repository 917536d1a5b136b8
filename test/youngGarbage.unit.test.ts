/**
 * Scavenges while sealing for an upload (src/core/youngGarbage.ts): one per GARBAGE_BETWEEN_SCAVENGES bytes of
 * young garbage when node exposes gc (the functions' exec wrapper starts node with --expose-gc), none and no
 * error when it does not; the upload's sealer reports its garbage.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ByteSource } from '../src/core/byteSource.ts';
import { SealedBytes } from '../src/core/format/index.ts';
import { KeyRing } from '../src/core/keyRing.ts';
import { Secret } from '../src/core/secret.ts';
import { GARBAGE_BETWEEN_SCAVENGES, YoungGarbage } from '../src/core/youngGarbage.ts';

const MiB = 2 ** 20;
const g = globalThis as { gc?: unknown };
afterEach(() => {
  delete g.gc;
});

describe('YoungGarbage', () => {
  it('asks for one minor collection each time the bytes made reach the threshold, then counts again from zero', () => {
    const gc = vi.fn();
    const garbage = new YoungGarbage(4 * MiB, gc);
    for (let i = 0; i < 3; i++) garbage.made(MiB);
    expect(gc).not.toHaveBeenCalled();
    garbage.made(MiB);
    expect(gc.mock.calls).toEqual([[{ type: 'minor' }]]);
    for (let i = 0; i < 3; i++) garbage.made(MiB);
    expect(gc).toHaveBeenCalledTimes(1);
    garbage.made(MiB);
    expect(gc).toHaveBeenCalledTimes(2);
  });

  it('without an exposed gc (tests, the CLI) does nothing and throws nothing', () => {
    expect(typeof g.gc).toBe('undefined');
    const garbage = new YoungGarbage(1);
    expect(() => garbage.made(10 * MiB)).not.toThrow();
  });

  it('a global gc that is not a function is not called', () => {
    g.gc = 'not a function';
    expect(() => new YoungGarbage(1).made(10)).not.toThrow();
  });

  it("takes node's gc when it is exposed", () => {
    const gc = vi.fn();
    g.gc = gc;
    new YoungGarbage(1).made(1);
    expect(gc).toHaveBeenCalledWith({ type: 'minor' });
  });
});

describe('the codec reports its garbage', () => {
  const ID = { dataspace: 'logs', segmentId: 'garbage' };
  const ringP = KeyRing.fromSecrets(new Secret('young-garbage-secret'), [], async (s) => s.reveal());
  const plain = Buffer.alloc(10 * MiB + 17, 3);
  async function sealed(): Promise<void> {
    const ring = await ringP;
    let at = 0;
    const bytes: ByteSource = {
      async read(target) {
        const n = plain.copy(target, 0, at);
        at += n;
        return n;
      },
    };
    const sealer = new SealedBytes({ key: ring.current!, identity: ID, plaintext: bytes, plaintextSize: plain.length });
    const out = Buffer.alloc(sealer.storedSize);
    expect(await sealer.read(out)).toBe(out.length);
  }

  it('the upload: a scavenge per GARBAGE_BETWEEN_SCAVENGES of plaintext sealed', async () => {
    const gc = vi.fn();
    g.gc = gc;
    await sealed();
    expect(gc).toHaveBeenCalledTimes(Math.floor(plain.length / GARBAGE_BETWEEN_SCAVENGES));
  });
});
