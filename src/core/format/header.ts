/**
 * The 48-byte header of format v1 (docs/FORMAT.md): stored in plaintext at the start of every object, and the
 * associated data of every chunk, so a header from another object or a changed field fails authentication.
 *
 *   offset size
 *    0      4   magic "BKS1"
 *    4      1   version 1
 *    5      1   algorithm 1 (AES-256-GCM)
 *    6      1   log2 of the plaintext chunk size (16..24)
 *    7      1   reserved 0
 *    8      8   key id: which key among current and previous (keyRing.ts)
 *   16     32   salt, random per object: input of the object key (chunkCipher.ts)
 */
import { MalformedHeaderError } from '../errors.ts';
import { KEY_ID_SIZE } from '../keyRing.ts';

export const HEADER_SIZE = 48;
export const SALT_SIZE = 32;
/** Bounds of the log2 of the plaintext chunk size (64 KiB .. 16 MiB), and the default (1 MiB). */
export const MIN_CHUNK_LOG2 = 16;
export const MAX_CHUNK_LOG2 = 24;
export const DEFAULT_CHUNK_LOG2 = 20;

const MAGIC = Buffer.from('BKS1', 'ascii');
const VERSION = 1;
const ALGORITHM_AES_256_GCM = 1;
const RESERVED = 0;
const OFFSET = Object.freeze({ magic: 0, version: 4, algorithm: 5, chunkLog2: 6, reserved: 7, keyId: 8, salt: 16 });

export interface Header {
  readonly chunkLog2: number;
  readonly keyId: Buffer;
  readonly salt: Buffer;
  /** The 48 bytes as stored: the associated data of every chunk. */
  readonly raw: Buffer;
}

/** True when `chunkLog2` is a chunk size format v1 allows. */
export function isChunkLog2(chunkLog2: number): boolean {
  return Number.isInteger(chunkLog2) && chunkLog2 >= MIN_CHUNK_LOG2 && chunkLog2 <= MAX_CHUNK_LOG2;
}

/** The header of a new object. */
export function encodeHeader(chunkLog2: number, keyId: Buffer, salt: Buffer): Header {
  if (!isChunkLog2(chunkLog2)) throw new MalformedHeaderError(`chunk log2 ${chunkLog2} is outside ${MIN_CHUNK_LOG2}..${MAX_CHUNK_LOG2}`);
  const raw = Buffer.alloc(HEADER_SIZE);
  MAGIC.copy(raw, OFFSET.magic);
  raw[OFFSET.version] = VERSION;
  raw[OFFSET.algorithm] = ALGORITHM_AES_256_GCM;
  raw[OFFSET.chunkLog2] = chunkLog2;
  raw[OFFSET.reserved] = RESERVED;
  keyId.copy(raw, OFFSET.keyId, 0, KEY_ID_SIZE);
  salt.copy(raw, OFFSET.salt, 0, SALT_SIZE);
  return parseHeader(raw);
}

/** Parses and checks the first 48 bytes of `bytes`; MalformedHeaderError names what is wrong. */
export function parseHeader(bytes: Buffer): Header {
  if (bytes.length < HEADER_SIZE) throw new MalformedHeaderError(`header is ${bytes.length} bytes; format v1 needs ${HEADER_SIZE}`);
  const raw = Buffer.from(bytes.subarray(0, HEADER_SIZE));
  if (!raw.subarray(OFFSET.magic, OFFSET.version).equals(MAGIC)) {
    throw new MalformedHeaderError('header does not start with "BKS1": not a bucket-storage encrypted object (or encryption was off when it was written)');
  }
  const version = raw[OFFSET.version];
  if (version !== VERSION) throw new MalformedHeaderError(`header version ${version} is not supported (expected ${VERSION})`);
  const algorithm = raw[OFFSET.algorithm];
  if (algorithm !== ALGORITHM_AES_256_GCM) throw new MalformedHeaderError(`header algorithm ${algorithm} is not supported (expected 1, AES-256-GCM)`);
  const chunkLog2 = raw[OFFSET.chunkLog2] ?? 0;
  if (!isChunkLog2(chunkLog2)) throw new MalformedHeaderError(`header chunk log2 ${chunkLog2} is outside ${MIN_CHUNK_LOG2}..${MAX_CHUNK_LOG2}`);
  const reserved = raw[OFFSET.reserved];
  if (reserved !== RESERVED) throw new MalformedHeaderError(`header reserved byte is ${reserved}, expected 0`);
  return { chunkLog2, keyId: raw.subarray(OFFSET.keyId, OFFSET.salt), salt: raw.subarray(OFFSET.salt, HEADER_SIZE), raw };
}
