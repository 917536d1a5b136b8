import { fstatSync, ftruncateSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { ConfigError } from '../../core/errors.ts';
import { loadKeyRing } from '../../core/encryptionKeys.ts';
import { validateIdentity } from '../../core/objectKeys.ts';
import { createDecryptStream, createEncryptStream, MAX_CHUNK_LOG2, MIN_CHUNK_LOG2, type GcmThreads } from '../../core/format/index.ts';
import { defineCommand, requireOption, UsageError, wholeNumberOption, type CommandContext } from '../command.ts';
import { openFile, regularFileSize, sealFile, withCipherThreads } from '../fileCodec.ts';
import { loadOfflineConfig } from '../offlineConfig.ts';

const identityOptions = { dataspace: { type: 'string' }, segment: { type: 'string' } } as const;
const identityHelp = { dataspace: 'the segment\'s dataspace (part of the encryption context)', segment: 'the segment id (part of the encryption context)' };

async function setUp(ctx: CommandContext) {
  refuseDirectoryStdin(ctx);
  const config = loadOfflineConfig(ctx.env);
  const identity = validateIdentity({ dataspace: requireOption(ctx, 'dataspace'), segmentId: requireOption(ctx, 'segment') });
  // The SDK clients are loaded only for a kms: secret: encrypt and decrypt otherwise start without them.
  const keyRing = await loadKeyRing(config, async () => (await import('../../core/clients.ts')).createClients(config).kms());
  return { config, identity, keyRing };
}

export const encryptCommand = defineCommand({
  summary: 'stdin → stdout, format v1 with S3_STORAGE_ENCRYPTION_KEY',
  usage: 'encrypt --dataspace D --segment S [--chunk-log2 N]',
  options: { ...identityOptions, 'chunk-log2': { type: 'string' } },
  help: {
    description: 'Encrypts stdin to stdout in format v1 (docs/FORMAT.md) with S3_STORAGE_ENCRYPTION_KEY, exactly as the upload function would for this segment. Touches no bucket.',
    options: { ...identityHelp, 'chunk-log2': `log2 of the plaintext chunk size, ${MIN_CHUNK_LOG2}..${MAX_CHUNK_LOG2} (default S3_STORAGE_CHUNK_LOG2, else 20 = 1 MiB)` },
    examples: ['bucket-storage encrypt --dataspace logs --segment seg-0001 < seg-0001 > seg-0001.bks'],
  },
  async run(ctx) {
    const size = stdinFileSize(ctx);
    const encrypt = async (threads?: GcmThreads) => {
      const { config, identity, keyRing } = await setUp(ctx);
      if (keyRing.current === undefined) {
        throw new ConfigError('S3_STORAGE_ENCRYPTION_KEY', 'S3_STORAGE_ENCRYPTION_KEY is off: there is no key to encrypt with');
      }
      const chunkLog2 = wholeNumberOption(ctx, 'chunk-log2', MIN_CHUNK_LOG2, MAX_CHUNK_LOG2) ?? config.chunkLog2;
      if (size !== undefined && threads !== undefined) await sealFile(0, size, { key: keyRing.current, identity, chunkLog2 }, ctx.stdout, threads);
      else await pipeline(ctx.stdin, createEncryptStream({ key: keyRing.current, identity, chunkLog2 }), ctx.stdout);
    };
    await (size === undefined ? encrypt() : withCipherThreads(encrypt));
    return 0;
  },
});

export const decryptCommand = defineCommand({
  summary: 'stdin → stdout (current or previous keys)',
  usage: 'decrypt --dataspace D --segment S',
  options: identityOptions,
  help: {
    description: 'Decrypts a format v1 object from stdin to stdout with the current key or one of S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS. Only authenticated chunks are written; on failure the exit status is 1 (and a regular-file stdout is cut back).',
    options: identityHelp,
    examples: ['bucket-storage decrypt --dataspace logs --segment seg-0001 < seg-0001.bks > seg-0001'],
  },
  async run(ctx) {
    const size = stdinFileSize(ctx);
    const decrypt = async (threads?: GcmThreads) => {
      const { identity, keyRing } = await setUp(ctx);
      // Only authenticated chunks reach stdout. If stdout is a regular file, a failure cuts it back to the size
      // it had before this command, so what it wrote cannot be mistaken for a whole segment.
      const before = ctx.stdout === process.stdout ? regularFileSize(1) : undefined;
      try {
        if (size !== undefined && threads !== undefined) await openFile(0, size, { keyRing, identity }, ctx.stdout, threads);
        else await pipeline(ctx.stdin, createDecryptStream({ keyRing, identity }), ctx.stdout);
      } catch (err) {
        if (before !== undefined) ftruncateSync(1, before);
        throw err;
      }
    };
    await (size === undefined ? decrypt() : withCipherThreads(decrypt));
    return 0;
  },
});

/** The size of stdin when it is a regular file (read by position, on the cipher threads); otherwise undefined (a
 *  pipe, a terminal, a test's stream: the stream codec). */
function stdinFileSize(ctx: CommandContext): number | undefined {
  return ctx.stdin === process.stdin ? regularFileSize(0) : undefined;
}

/** stdin redirected from a directory reads as empty: refuse it rather than encrypt or decrypt nothing. */
function refuseDirectoryStdin(ctx: CommandContext): void {
  if (ctx.stdin !== process.stdin) return;
  let directory = false;
  try {
    directory = fstatSync(0).isDirectory();
  } catch {
    return;
  }
  if (directory) throw new UsageError('stdin is a directory; redirect a file (< FILE) or pipe the bytes in');
}
