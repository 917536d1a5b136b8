/**
 * What `bucket-storage ship` has announced, kept in a small JSON file so a restart neither misses nor repeats a
 * segment:
 *   {"version":1,"shipped":{"<dataspace>/<segmentId>":{"size":N,"sha256":"<hex>","at":"<ISO date>"}, …}}
 * It is replaced atomically (written to a temporary file beside it, fsynced, renamed over it, the directory
 * fsynced), so a crash leaves the old state or the new one, never a mix. Entries of segments whose files are
 * gone are dropped, so it stays as small as the directory. A file that cannot be parsed is an error, never
 * reset (that would announce everything again). A lock file beside it keeps a second shipper off it; a lock
 * left by a killed process (its pid no longer runs) is taken over.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import * as z from 'zod';
import { ShipStateError } from '../core/errors.ts';
import { errnoCode } from '../core/confinement.ts';

const entrySchema = z.strictObject({ size: z.number().int().min(0), sha256: z.string().regex(/^[0-9a-f]{64}$/), at: z.string() });
const stateSchema = z.strictObject({ version: z.literal(1), shipped: z.record(z.string(), entrySchema) });
export type ShippedEntry = z.infer<typeof entrySchema>;

export class ShipState {
  private constructor(
    readonly path: string,
    private readonly shipped: Map<string, ShippedEntry>,
  ) {}

  /** The state at `path`, or an empty one when the file does not exist yet. */
  static async load(path: string): Promise<ShipState> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return new ShipState(path, new Map());
      throw new ShipStateError(path, `ship state ${path} cannot be read (${err instanceof Error ? err.message : String(err)})`, { cause: err });
    }
    let parsed;
    try {
      parsed = stateSchema.parse(JSON.parse(text));
    } catch (err) {
      throw new ShipStateError(path, `ship state ${path} is damaged (${err instanceof Error ? err.message.split('\n')[0] : String(err)}); it is never reset automatically: restore it, or move it aside to announce every segment of the directory again (the upload acknowledges those already stored)`, { cause: err });
    }
    return new ShipState(path, new Map(Object.entries(parsed.shipped)));
  }

  has(name: string): boolean {
    return this.shipped.has(name);
  }

  get size(): number {
    return this.shipped.size;
  }

  record(name: string, entry: ShippedEntry): void {
    this.shipped.set(name, entry);
  }

  /** Drops the entries whose segment is not in `present`; returns how many. */
  prune(present: ReadonlySet<string>): number {
    let dropped = 0;
    for (const name of this.shipped.keys()) {
      if (!present.has(name)) {
        this.shipped.delete(name);
        dropped++;
      }
    }
    return dropped;
  }

  /** Writes the state atomically: temporary file, fsync, rename over the old one, fsync of the directory. */
  async save(): Promise<void> {
    const tmp = `${this.path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    const body = `${JSON.stringify({ version: 1, shipped: Object.fromEntries(this.shipped) })}\n`;
    try {
      const file = await open(tmp, 'w', 0o600);
      try {
        await file.writeFile(body);
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(tmp, this.path);
      const dir = await open(dirname(this.path), 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw new ShipStateError(this.path, `ship state ${this.path} cannot be written (${err instanceof Error ? err.message : String(err)})`, { cause: err });
    }
  }
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes `<state>.lock` for this process; resolves to its release. Refused while another live shipper holds it. */
export async function lockState(statePath: string): Promise<() => Promise<void>> {
  const lock = `${statePath}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const file = await open(lock, 'wx', 0o600);
      await file.writeFile(String(process.pid));
      await file.close();
      return () => unlink(lock).catch(() => undefined);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new ShipStateError(statePath, `lock ${lock} cannot be created (${err instanceof Error ? err.message : String(err)})`, { cause: err });
    }
    const holder = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && running(holder)) {
      throw new ShipStateError(statePath, `another bucket-storage ship (pid ${holder}) uses ${statePath}; run one shipper per state file`);
    }
    // Left by a process that no longer runs: taken over.
    await unlink(lock).catch(() => undefined);
  }
  throw new ShipStateError(statePath, `lock ${lock} keeps coming back; is another shipper starting?`);
}
