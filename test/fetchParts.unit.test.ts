/**
 * The fetch function's small parts without a server: the restore metrics middleware's values, the sweep of
 * restore temporaries (names, live writers, the idle boundary, its log line), the refusal of protected s3://
 * destinations and the s3:// destination's upload (with a fake store), a file:// destination whose rename
 * fails, the stored-size check, an object without our metadata, and restoreAndCheck's size check. Written for
 * the survivors of the mutation run `fetch2` (docs/MUTATION.md).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, open as openFile, readdir, readFile, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Config } from '../src/core/config.ts';
import { IntegrityError, LocationError, MalformedHeaderError, ProtectedDestinationError, TruncatedError } from '../src/core/errors.ts';
import type { FetchAnswer } from '../src/core/messages.ts';
import { openDestination, refuseProtectedDestination, type PutStore } from '../src/fetch/destination.ts';
import { checkStoredSize, fetchSegment, type FetchRuntime } from '../src/fetch/fetchSegment.ts';
import { locateSegment, type LocatedSegment } from '../src/fetch/locate.ts';
import { restoreAndCheck } from '../src/fetch/restoreAndCheck.ts';
import { restoreMetrics } from '../src/fetch/restoreMetrics.ts';
import { removeAbandonedTemporaries, temporaryName } from '../src/fetch/restoreTemporaries.ts';
import { writeOnPool, writePlacementFor } from '../src/fetch/writePlacement.ts';
import { capturedOutput } from './support/capturedOutput.ts';

vi.mock('../src/fetch/fetchSegment.ts', async (importOriginal) => ({ ...(await importOriginal<typeof import('../src/fetch/fetchSegment.ts')>()), fetchSegment: vi.fn() }));
// The real placement unless a test says otherwise (a file system this machine does not have: EFS).
vi.mock('../src/fetch/writePlacement.ts', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/fetch/writePlacement.ts')>();
  return { ...real, writePlacementFor: vi.fn(real.writePlacementFor) };
});

/** The non-empty lines written to stdout and stderr (EMF lines, log lines) while `run` runs. */
async function stdoutOf(run: () => unknown): Promise<string[]> {
  return (await capturedOutput(run)).split('\n').filter((l) => l.trim() !== '');
}
const emf = (lines: string[]) => lines.filter((l) => l.startsWith('{"_aws"')).map((l) => JSON.parse(l) as Record<string, unknown>);

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'bks-fetchparts-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('restoreMetrics', () => {
  type Request = Parameters<NonNullable<ReturnType<typeof restoreMetrics>['after']>>[0];
  const answer = { bytesWritten: 42 } as FetchAnswer;
  /** One invocation through the middleware; the clock reads 1000 ms at `before` and 3500 ms afterwards. */
  async function run(event: unknown, fail?: Error) {
    const times = [1000, 3500];
    const mw = restoreMetrics(() => times.shift() ?? 3500);
    const request = { event, response: fail ? null : answer, error: fail } as unknown as Request;
    return emf(
      await stdoutOf(async () => {
        await mw.before!(request);
        if (fail) await mw.onError!(request);
        else await mw.after!(request);
      }),
    );
  }

  it('a restore: its bytes, the seconds between before and after, whole unless the event has a range', async () => {
    expect(await run({ range: { start: 0, end: 1 } })).toEqual([expect.objectContaining({ read: 'range', outcome: 'restored', RestoredBytes: 42, RestoreSeconds: 2.5 })]);
    for (const event of [{}, { range: undefined }, null, 'text']) expect(await run(event)).toEqual([expect.objectContaining({ read: 'whole', RestoreSeconds: 2.5 })]);
  });

  it('a failure: its error class and seconds', async () => {
    expect(await run({}, new TruncatedError('short'))).toEqual([expect.objectContaining({ outcome: 'failed', errorClass: 'TruncatedError', RestoreSeconds: 2.5 })]);
  });
});

describe('restore temporaries', () => {
  const host = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);

  it('a temporary name begins with the destination name, cut at 32 characters', () => {
    expect(temporaryName('seg-1')).toMatch(/^\.seg-1\.[0-9a-f]{8}-\d+-[0-9a-f]{12}\.bks-restoring$/u);
    expect(temporaryName('x'.repeat(40)).startsWith(`.${'x'.repeat(32)}.`)).toBe(true);
  });

  it("keeps a fresh file of a live writer on this host; removes an idle one only past the limit; logs only removals", async () => {
    const dir = await mkdtemp(join(root, 'tmp-'));
    const entry = (n: string) => join(dir, n);
    const live = `.seg-1.${host}-${process.ppid}-a1b2c3d4e5f6.bks-restoring`;
    const idle = `.seg-2.0badc0de-4242-a1b2c3d4e5f6.bks-restoring`;
    await writeFile(entry(live), 'partial');
    await writeFile(entry(idle), 'partial');
    const old = new Date(Date.now() - 60_000);
    await utimes(entry(idle), old, old);
    const { mtimeMs } = await lstat(entry(idle));
    let removed = -1;
    // Exactly at the limit: not yet idle.
    const quiet = await stdoutOf(async () => (removed = await removeAbandonedTemporaries(entry, 10_000, mtimeMs + 10_000)));
    expect(removed).toBe(0);
    expect(quiet.filter((l) => l.includes('removed temporary files'))).toEqual([]);
    expect((await readdir(dir)).sort()).toEqual([live, idle].sort());
    const logged = await stdoutOf(async () => (removed = await removeAbandonedTemporaries(entry, 10_000, mtimeMs + 10_001)));
    expect(removed).toBe(1);
    expect(await readdir(dir)).toEqual([live]);
    const line = logged.find((l) => l.includes('removed temporary files of restores that were killed'));
    expect(line).toBeDefined();
    expect(JSON.parse(line!)).toMatchObject({ directory: entry(''), removed: 1 });
  });

  it('a file that cannot be unlinked is not counted', async () => {
    const dir = await mkdtemp(join(root, 'tmp-'));
    const idle = `.seg-3.0badc0de-4242-a1b2c3d4e5f6.bks-restoring`;
    await writeFile(join(dir, idle), 'partial');
    // lstat sees the file; the unlink that follows names a file that is not there.
    const seen = new Set<string>();
    const entry = (n: string) => {
      if (n === '') return join(dir, n);
      if (seen.has(n)) return join(dir, 'gone', n);
      seen.add(n);
      return join(dir, n);
    };
    expect(await removeAbandonedTemporaries(entry, 0, Date.now() + 60_000)).toBe(0);
  });
});

describe('refuseProtectedDestination', () => {
  const registry = { all: async () => [{ bucket: 'data', region: 'eu-west-1' }] };
  const config = { keyPrefix: '', stateBucket: 'state', staging: { bucket: 'staging', region: 'eu-west-1' } } as Pick<Config, 'keyPrefix' | 'stateBucket' | 'staging'>;
  const refusal = async (bucket: string, key: string, c = config) => {
    const err: unknown = await refuseProtectedDestination({ kind: 's3', bucket, key }, c, registry).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ProtectedDestinationError);
    return (err as Error).message;
  };

  it('names the destination and the place it belongs to', async () => {
    expect(await refusal('state', 'k/1')).toBe('destination "s3://state/k/1" is in the state bucket (S3_STORAGE_STATE_BUCKET), which holds the registry of buckets; restore elsewhere');
    expect(await refusal('staging', 'k/2')).toBe('destination "s3://staging/k/2" is in the staging bucket (S3_STORAGE_STAGING_BUCKET), where segments wait to be copied; restore elsewhere');
    expect(await refusal('data', 'k/3')).toBe(
      'destination "s3://data/k/3" is a data bucket of this pipeline (S3_STORAGE_OBJECT_KEY_PREFIX is empty: the whole bucket is ours); a restore there could overwrite stored segments: restore to another bucket or key',
    );
    expect(await refusal('data', 'p/k/4', { ...config, keyPrefix: 'p/' })).toBe(
      'destination "s3://data/p/k/4" is under the object key prefix "p/" of a data bucket of this pipeline; a restore there could overwrite stored segments: restore to another bucket or key',
    );
  });
});

const baseConfig = { region: 'eu-west-1', uploadTimeoutSeconds: 900, partSize: 8 << 20, transferConcurrency: 4, kmsKeyArn: undefined, keyPrefix: 'p/', stateBucket: undefined, staging: undefined } as unknown as Config;

describe('an s3:// destination', () => {
  const registry = { all: async () => [] };
  function fakeStore(putFails: boolean) {
    const calls: { olderThan?: Date; options?: unknown } = {};
    const store: PutStore = {
      abortIncompleteUploads: async (_ref: unknown, _key: string, olderThan: Date) => {
        calls.olderThan = olderThan;
        return 0;
      },
      put: async (_ref: unknown, _key: string, body: unknown, options: unknown) => {
        calls.options = options;
        try {
          for await (const chunk of body as Readable) void chunk;
        } catch {
          throw new Error('upload aborted');
        }
        if (putFails) throw new Error('upload refused');
        return undefined as never;
      },
    } as unknown as PutStore;
    return { store, calls };
  }

  it('is named by its URL; first aborts uploads older than the timeout; passes the signal', async () => {
    const { store, calls } = fakeStore(false);
    const dest = await openDestination({ kind: 's3', bucket: 'b', key: 'k/1' }, baseConfig, store, registry);
    expect(dest.url).toBe('s3://b/k/1');
    const signal = new AbortController().signal;
    const before = Date.now();
    await dest.write(Readable.from([Buffer.from('abc')]), signal);
    const cutoff = calls.olderThan!.getTime();
    expect(cutoff).toBeGreaterThanOrEqual(before - 900_000);
    expect(cutoff).toBeLessThanOrEqual(Date.now() - 900_000);
    expect(calls.options).toMatchObject({ abortSignal: signal });
  });

  it("a failure of the body is the write's error, not the upload's; otherwise the upload's", async () => {
    const broken = new IntegrityError('sha256', 'a', 'b', 'test');
    const body = new Readable({ read() {} });
    const dest = await openDestination({ kind: 's3', bucket: 'b', key: 'k/2' }, baseConfig, fakeStore(false).store, registry);
    const writing = dest.write(body);
    setImmediate(() => body.destroy(broken));
    await expect(writing).rejects.toBe(broken);
    const other = await openDestination({ kind: 's3', bucket: 'b', key: 'k/3' }, baseConfig, fakeStore(true).store, registry);
    await expect(other.write(Readable.from([Buffer.from('abc')]))).rejects.toThrow('upload refused');
  });
});

/**
 * Makes `dir` refuse new files: read-only for an ordinary user; immutable (chattr +i) for root, who ignores
 * modes. Resolves to an undo, or undefined where neither works.
 */
async function refuseNewFiles(dir: string): Promise<(() => Promise<void>) | undefined> {
  await chmod(dir, 0o500);
  const probe = join(dir, 'probe');
  const accepts = () => writeFile(probe, '').then(() => unlink(probe).then(() => true), () => false);
  if (!(await accepts())) return () => chmod(dir, 0o700);
  if (spawnSync('chattr', ['+i', dir]).status === 0 && !(await accepts())) {
    return async () => {
      spawnSync('chattr', ['-i', dir]);
      await chmod(dir, 0o700);
    };
  }
  spawnSync('chattr', ['-i', dir]);
  await chmod(dir, 0o700);
  return undefined;
}

describe('a file:// destination in a directory that refuses new files', () => {
  it('fails before any read, naming the directory and the cause', async () => {
    const dir = await mkdtemp(join(root, 'ro-'));
    const undo = await refuseNewFiles(dir);
    // Never skipped: where neither works, this fails and says why.
    if (undo === undefined) throw new Error('this test needs a directory that refuses new files: run it as an ordinary user, or as root where `chattr +i` works on the temporary directory');
    try {
      const path = join(dir, 'seg');
      const err: unknown = await openDestination({ kind: 'file', path }, { ...baseConfig, restoreRoot: root } as Config, {} as PutStore, { all: async () => [] }).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(LocationError);
      expect((err as Error).message).toContain(`cannot create a file in ${dir} (`);
      expect((err as Error).message).toContain('): check that the directory is writable');
      expect((err as Error).cause).toMatchObject({ code: expect.stringMatching(/^E/u) });
    } finally {
      await undo();
    }
  });
});

describe('a file:// destination whose rename fails', () => {
  const open = async (name: string) => {
    const dir = await mkdtemp(join(root, 'dest-'));
    const path = join(dir, name);
    const dest = await openDestination({ kind: 'file', path }, { ...baseConfig, restoreRoot: root } as Config, fakeStoreUnused, { all: async () => [] });
    expect(dest.url).toBe(`file://${path}`); // named by its URL, as an s3:// destination is
    const temp = (await readdir(dir)).find((n) => n.endsWith('.bks-restoring'))!;
    return { dir, path, dest, temp };
  };
  const fakeStoreUnused = {} as PutStore;

  it('a directory that appeared at the destination', async () => {
    const { path, dest } = await open('seg-1');
    await mkdir(path);
    await writeFile(join(path, 'inside'), 'x');
    const err: unknown = await dest.write(Readable.from([Buffer.from('abc')])).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(LocationError);
    expect((err as Error).message).toContain(`cannot move the restored file into place at ${path} (a directory appeared at the destination)`);
    expect((err as Error).cause).toMatchObject({ code: 'EISDIR' });
  });

  it('any other failure names its code', async () => {
    const { dir, dest, temp } = await open('seg-2');
    const body = new Readable({ read() {} });
    const writing = dest.write(body);
    // The temporary file disappears before the rename.
    await unlink(join(dir, temp));
    body.push('abc');
    body.push(null);
    const err: unknown = await writing.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(LocationError);
    expect((err as Error).message).toContain('(ENOENT)');
  });
});

describe('a file:// destination on a file system that is not local', () => {
  it("writes through the placement its directory's file system gets: on the pool for EFS", async () => {
    const dir = await mkdtemp(join(root, 'efs-'));
    const seen: { fd: number; bytes: number }[] = [];
    // As on EFS: the pool.
    vi.mocked(writePlacementFor).mockImplementationOnce(async () => async (file, buffers, position) => {
      const written = await writeOnPool(file, buffers, position);
      seen.push({ fd: file.fd, bytes: written });
      return written;
    });
    const dest = await openDestination({ kind: 'file', path: join(dir, 'seg') }, { ...baseConfig, restoreRoot: root } as Config, {} as PutStore, { all: async () => [] });
    // Asked about the destination's own directory (through its descriptor).
    const asked = vi.mocked(writePlacementFor).mock.lastCall?.[0] ?? '';
    expect((await lstat(asked)).ino).toBe((await lstat(dir)).ino);
    const bytes = Buffer.alloc(600 * 1024, 7);
    await dest.write(Readable.from([bytes.subarray(0, 300 * 1024), bytes.subarray(300 * 1024)]));
    expect(seen.reduce((sum, w) => sum + w.bytes, 0)).toBe(bytes.length);
    expect((await readdir(dir))).toEqual(['seg']);
  });
});

describe('write-behind fdatasync', () => {
  interface Outcome {
    /** fdatasyncs started. */
    readonly calls: number;
    /** What the restore's write rejected with, if it did. */
    readonly error: unknown;
    /** Files left in the destination's directory. */
    readonly left: string[];
    /** fdatasyncs started once the whole body had arrived, and whether the write had settled by then. */
    readonly atEnd: { calls: number; settled: boolean };
  }

  /**
   * A 64 MiB file:// restore whose fdatasyncs are answered by `answer`; `release` (if given) is called once the
   * whole body has arrived and the write was seen unsettled or settled.
   */
  async function restoreWith(answer: () => Promise<void>, release?: () => void): Promise<Outcome> {
    const probe = await openFile(join(root, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
    await probe.close();
    const spy = vi.spyOn(proto, 'datasync').mockImplementation(answer);
    const dir = await mkdtemp(join(root, 'sync-'));
    try {
      const dest = await openDestination({ kind: 'file', path: join(dir, 'big') }, { ...baseConfig, restoreRoot: root } as Config, {} as PutStore, { all: async () => [] });
      const MiB = Buffer.alloc(1 << 20);
      let arrived!: () => void;
      const allArrived = new Promise<void>((resolve) => (arrived = resolve));
      // Each MiB arrives in its own turn of the event loop, as from a socket (the writer itself writes synchronously).
      const body = Readable.from(
        (async function* () {
          for (let i = 0; i < 64; i++) {
            await new Promise((resolve) => setImmediate(resolve));
            yield MiB;
          }
          arrived();
        })(),
      );
      let settled = false;
      const writing = dest.write(body).then(
        () => ((settled = true), undefined),
        (err: unknown) => ((settled = true), err),
      );
      await Promise.race([allArrived, writing]);
      // Time for the rest of a restore that does not wait (fsync, close, rename of 64 MiB) to finish.
      await Promise.race([writing, new Promise((resolve) => setTimeout(resolve, release ? 2000 : 0))]);
      const atEnd = { calls: spy.mock.calls.length, settled };
      release?.();
      const error = await writing;
      return { calls: spy.mock.calls.length, error, left: await readdir(dir), atEnd };
    } finally {
      spy.mockRestore();
      await rm(dir, { recursive: true, force: true });
    }
  }

  it('one every 32 MiB, each once the previous one settled; the restore succeeds when they do', async () => {
    const ok = await restoreWith(async () => undefined);
    expect(ok.error).toBeUndefined();
    expect(ok.calls).toBe(2);
    expect(ok.left).toEqual(['big']);
  });

  it('a failed fdatasync fails the restore (Linux may not report it again to the final fsync) and leaves no file', async () => {
    const eio = await restoreWith(async () => Promise.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' })));
    expect(eio.error).toMatchObject({ code: 'EIO' });
    expect(eio.calls).toBe(1);
    expect(eio.left).toEqual([]);
  });

  it('never two at once, and the end of the body waits for the one in flight', async () => {
    let release!: () => void;
    const pending = new Promise<void>((resolve) => (release = resolve));
    const slow = await restoreWith(() => pending, () => release());
    expect(slow.atEnd).toEqual({ calls: 1, settled: false });
    expect(slow.error).toBeUndefined();
    expect(slow.calls).toBe(1);
    expect(slow.left).toEqual(['big']);
  });

  it('the fdatasync in flight at the end of the body fails the restore when it fails', async () => {
    let fail!: (err: Error) => void;
    const pending = new Promise<void>((_resolve, reject) => (fail = reject));
    const late = await restoreWith(() => pending, () => fail(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' })));
    expect(late.atEnd).toEqual({ calls: 1, settled: false });
    expect(late.error).toMatchObject({ code: 'EIO' });
    expect(late.left).toEqual([]);
  });
});

describe('a file written in parts', () => {
  const MiB = 1 << 20;
  /** A file:// destination in a fresh directory, and a spy on its fdatasyncs (answered by `answer`). */
  async function partsDestination(answer: () => Promise<void> = async () => undefined) {
    const probe = await openFile(join(root, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
    await probe.close();
    const spy = vi.spyOn(proto, 'datasync').mockImplementation(answer);
    const dir = await mkdtemp(join(root, 'parts-'));
    const dest = await openDestination({ kind: 'file', path: join(dir, 'seg') }, { ...baseConfig, restoreRoot: root } as Config, {} as PutStore, { all: async () => [] });
    return { dest, dir, spy };
  }
  const filled = (bytes: number, value: number) => Readable.from(Array.from({ length: bytes / MiB }, () => Buffer.alloc(MiB, value)));

  it('each part lands at its offset, whatever the order they finish in; the parts count toward one fdatasync every 32 MiB', async () => {
    const { dest, dir, spy } = await partsDestination();
    try {
      const signal = new AbortController().signal;
      let wrote: number[] = [];
      await dest.writeParts!(async (file) => {
        // The second part written first: offsets, not order, place the bytes.
        wrote = [await file.writePart(filled(20 * MiB, 2), 20 * MiB, signal), await file.writePart(filled(20 * MiB, 1), 0, signal)];
      });
      expect(wrote).toEqual([20 * MiB, 20 * MiB]);
      const bytes = await readFile(join(dir, 'seg'));
      expect(bytes.length).toBe(40 * MiB);
      expect([bytes[0], bytes[20 * MiB - 1], bytes[20 * MiB], bytes[40 * MiB - 1]]).toEqual([1, 1, 2, 2]);
      expect(spy.mock.calls.length).toBe(1);
      expect(await readdir(dir)).toEqual(['seg']);
    } finally {
      spy.mockRestore();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a failed fdatasync fails it and leaves no file, even when it fails after the last part ended', async () => {
    let fail!: (err: Error) => void;
    const { dest, dir, spy } = await partsDestination(() => new Promise<void>((_resolve, reject) => (fail = reject)));
    try {
      const signal = new AbortController().signal;
      const writing = dest.writeParts!(async (file) => {
        await file.writePart(filled(40 * MiB, 3), 0, signal);
        setTimeout(() => fail(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' })), 20);
      });
      await expect(writing).rejects.toMatchObject({ code: 'EIO' });
      expect(await readdir(dir)).toEqual([]);
    } finally {
      spy.mockRestore();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('both kinds of write fsync the file once, after the last byte and before the rename; a stop during that fsync leaves no file', async () => {
    const probe = await openFile(join(root, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
    await probe.close();
    for (const kind of ['write', 'writeParts'] as const) {
      for (const stop of [false, true]) {
        const { dest, dir, spy } = await partsDestination();
        const controller = new AbortController();
        const seen: string[][] = [];
        const syncSpy = vi.spyOn(proto, 'sync').mockImplementation(async () => {
          seen.push(await readdir(dir));
          if (stop) controller.abort(new Error('deadline'));
        });
        try {
          const writing =
            kind === 'write'
              ? dest.write(filled(2 * MiB, 4), controller.signal)
              : dest.writeParts!(async (file) => void (await file.writePart(filled(2 * MiB, 4), 0, new AbortController().signal)), controller.signal);
          if (stop) await expect(writing).rejects.toThrow('deadline');
          else await writing;
          // The file's fsync, then (once renamed into place) the directory's; a stopped restore renames nothing.
          expect(syncSpy).toHaveBeenCalledTimes(stop ? 1 : 2);
          // At the file's fsync the bytes are all in the temporary file, not yet renamed into place.
          expect(seen[0]?.filter((n) => n === 'seg')).toEqual([]);
          if (!stop) expect(seen[1]).toEqual(['seg']);
          expect(await readdir(dir)).toEqual(stop ? [] : ['seg']);
          if (!stop) expect((await readFile(join(dir, 'seg'))).length).toBe(2 * MiB);
        } finally {
          syncSpy.mockRestore();
          spy.mockRestore();
          await rm(dir, { recursive: true, force: true });
        }
      }
    }
  });

  it('a failing part leaves no file', async () => {
    const { dest, dir, spy } = await partsDestination();
    try {
      const broken = new Error('part failed');
      const body = Readable.from(
        (async function* () {
          yield Buffer.alloc(MiB);
          throw broken;
        })(),
      );
      await expect(dest.writeParts!(async (file) => void (await file.writePart(body, 0, new AbortController().signal)))).rejects.toBe(broken);
      expect(await readdir(dir)).toEqual([]);
    } finally {
      spy.mockRestore();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('fetchSegment with fake stores (a plain object)', () => {
  const data = Buffer.from('hello world');
  const ref = { bucket: 'b', region: 'eu-west-1' };
  /** A runtime whose one bucket holds `data` as a plain object (read while encryption is on: written before). */
  function runtime(extraMetadata: Record<string, string> = {}, body: (range?: { start: number; end: number }) => Buffer = (r) => (r ? data.subarray(r.start, r.end + 1) : data)) {
    const metadata = { 'bks-format': 'plain', 'bks-size': String(data.length), 'bks-sha256': createHash('sha256').update(data).digest('hex'), ...extraMetadata };
    const store = {
      head: async () => ({ size: data.length, etag: '"e"', metadata, lastModified: new Date(-1000) }),
      get: async (_ref: unknown, _key: string, options: { range?: { start: number; end: number } } = {}) => Readable.from([...body(options.range)].map((b) => Buffer.from([b]))),
    };
    const config = { ...baseConfig, keyPrefix: '', restoreRoot: root, restoreConcurrency: 1, encryption: { mode: 'on' }, plainObjectsBefore: new Date(50) } as unknown as Config;
    return { config, store, roleStore: {} as PutStore, registry: { searchOrder: async () => [ref], all: async () => [ref] }, keyRing: undefined } as unknown as FetchRuntime;
  }
  const actual = () => vi.importActual<typeof import('../src/fetch/fetchSegment.ts')>('../src/fetch/fetchSegment.ts');

  it("reports progress at once, then not within 100 ms, then at the end; logs the plain read as a 'restore'", async () => {
    const { fetchSegment: real } = await actual();
    const dir = await mkdtemp(join(root, 'whole-'));
    const reports: number[][] = [];
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(100);
    let lines: string[];
    try {
      lines = await stdoutOf(() => real(runtime(), { dataspace: 'd', segmentId: 's', destination: `file://${join(dir, 'seg')}` }, { partSize: 1, concurrency: 1, onProgress: (w, t) => reports.push([w, t]) }));
    } finally {
      vi.useRealTimers();
    }
    expect(reports).toHaveLength(2);
    expect(reports[1]).toEqual([11, 11]);
    const warn = lines.find((l) => l.includes('plain object read while encryption is on'));
    expect(JSON.parse(warn!)).toMatchObject({ purpose: 'restore' });
  });

  it('a range of a plain object is read as it is, even with a bks-header; a wrong length names the range', async () => {
    const { fetchSegment: real } = await actual();
    const dir = await mkdtemp(join(root, 'range-'));
    const answer = await real(runtime({ 'bks-header': 'A'.repeat(64) }), { dataspace: 'd', segmentId: 's', destination: `file://${join(dir, 'seg')}`, range: { start: 2, end: 5 } });
    expect(answer).toMatchObject({ bytesWritten: 4 });
    const long = runtime({}, (r) => (r ? data.subarray(r.start, r.end + 2) : data));
    const err: unknown = await real(long, { dataspace: 'd', segmentId: 's', destination: `file://${join(dir, 'seg2')}`, range: { start: 2, end: 5 } }).then(() => undefined, (e: unknown) => e);
    expect(String(err)).toContain('bytes 2-5');
  });
});

describe('stored size, metadata, restoreAndCheck', () => {
  it("a bad destination is named 'destination'", async () => {
    const actual = await vi.importActual<typeof import('../src/fetch/fetchSegment.ts')>('../src/fetch/fetchSegment.ts');
    const runtime = { config: { keyPrefix: '' } } as unknown as FetchRuntime;
    await expect(actual.fetchSegment(runtime, { dataspace: 'd', segmentId: 's', destination: 'ftp://x/y' })).rejects.toThrow(/^destination /u);
  });

  const ref = { bucket: 'b', region: 'eu-west-1' };
  const found = (size: number): LocatedSegment => ({ ref, key: 'k/seg', info: { size, etag: '"e"', metadata: {} } as LocatedSegment['info'], metadata: { format: 'plain', plaintextSize: 10, sha256: 'a'.repeat(64) } });

  it('an object shorter or longer than its metadata says is refused, and named', () => {
    expect(() => checkStoredSize(found(10))).not.toThrow();
    expect(() => checkStoredSize(found(9))).toThrow(new TruncatedError('s3://b/k/seg holds 9 bytes but its metadata promises 10 (bks-size 10): it was truncated'));
    let err: unknown;
    try {
      checkStoredSize(found(11));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toContain('s3://b/k/seg is longer than its metadata says');
  });

  it('an object without bucket-storage metadata is named and refused', async () => {
    const store = { head: async () => ({ size: 1, etag: '"e"', metadata: {} }) } as unknown as Parameters<typeof locateSegment>[0];
    const registry = { searchOrder: async () => [ref] } as unknown as Parameters<typeof locateSegment>[1];
    const err: unknown = await locateSegment(store, registry, 'k/seg').then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(MalformedHeaderError);
    expect((err as Error).message).toBe('s3://b/k/seg carries no bucket-storage metadata (bks-format, bks-size): it was not written by the upload function; restore it by hand');
  });

  it('restoreAndCheck refuses a size other than expected, naming the restore', async () => {
    const sha256 = 'c'.repeat(64);
    vi.mocked(fetchSegment).mockResolvedValue({ bucket: 'b', region: 'eu-west-1', key: 'k/seg', size: 5, sha256, bytesWritten: 5 });
    const runtime = {} as FetchRuntime;
    const invocation = { dataspace: 'd', segmentId: 's', destination: 'file:///x' };
    const err: unknown = await restoreAndCheck(runtime, invocation, { sha256, bytes: 6 }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err).toMatchObject({ what: 'size', expected: '6', actual: '5' });
    expect((err as Error).message).toContain('restore to k/seg from s3://b');
    await expect(restoreAndCheck(runtime, invocation, { sha256, bytes: 5 })).resolves.toMatchObject({ bytesWritten: 5 });
  });
});
