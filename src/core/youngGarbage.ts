/**
 * Scavenges while a segment is sealed for an upload, when node runs with --expose-gc (the functions' exec wrapper).
 *
 * Node 20's `cipher.update` returns a fresh Buffer per piece, copied at once into the part buffer and dropped.
 * Those Buffers are young garbage, but their bytes live outside V8's heap, where they do not fill the young
 * generation: V8 scavenges them only after tens of MiB (an encrypted upload's Buffers ran 35–55 MiB above its
 * part buffers, exactly the part buffers with encryption `off`: docs/DEVELOPMENT.md, "Upload memory"). A
 * scavenge of a young generation this small takes a fraction of a millisecond.
 */
type MinorGc = (options: { type: 'minor' }) => void;

/**
 * Bytes of young garbage between two scavenges. 1 GiB uploads, three each on s3rver and fauxqs
 * (docs/DEVELOPMENT.md, "Upload memory"): every 4 MiB the upload peaked at 140–144 MiB against 174–188
 * without, at the same CPU or less; every 8 and 16 MiB left more (145–148 and 160–165 MiB). The restore was
 * tried too and is left without: 20–25 MiB less at its peak, but 0.1–0.3 CPU s/GiB more, and its peak was
 * already under the goal.
 */
export const GARBAGE_BETWEEN_SCAVENGES = 4 * 2 ** 20;

/** V8's `gc` when node exposes it, else undefined (tests, the CLI: nothing is collected early). */
function exposedGc(): MinorGc | undefined {
  const candidate: unknown = (globalThis as { gc?: unknown }).gc;
  return typeof candidate === 'function' ? (candidate as MinorGc) : undefined;
}

export class YoungGarbage {
  readonly #everyBytes: number;
  readonly #gc: MinorGc | undefined;
  #since = 0;

  constructor(everyBytes: number, gc: MinorGc | undefined = exposedGc()) {
    this.#everyBytes = everyBytes;
    this.#gc = gc;
  }

  /** `bytes` more of young garbage were made: a scavenge once `everyBytes` have gathered since the last. */
  made(bytes: number): void {
    if (this.#gc === undefined) return;
    this.#since += bytes;
    if (this.#since < this.#everyBytes) return;
    this.#since = 0;
    this.#gc({ type: 'minor' });
  }
}
