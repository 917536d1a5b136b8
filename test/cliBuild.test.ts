/**
 * The compiled CLI (`npm run build`'s dist/cli, which bin/bucket-storage.mjs runs while it is newer than the
 * sources): the packages every command loads at start are bundled into it (scripts/build.mjs, cliExternal: as
 * packages, zod alone is 97 ES modules to resolve and compile at each start), and encrypt and decrypt of a file
 * round-trip through it on the cipher threads.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runChecked } from './support/runProcess.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const SECRET = 'cli-build-test-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH';
let out: string;

beforeAll(async () => {
  // Inside the repository, so that the packages left external resolve from its node_modules as they do in dist/.
  await mkdir(join(REPO, '.test-tmp'), { recursive: true });
  out = await mkdtemp(join(REPO, '.test-tmp', 'cli-build-'));
  const { buildCli } = (await import(pathToFileURL(join(REPO, 'scripts/build.mjs')).href)) as { buildCli: (outdir: string) => Promise<void> };
  await buildCli(out);
}, 120_000);
afterAll(async () => {
  await rm(out, { recursive: true, force: true });
});

/** Every module the build wrote (the entry and its chunks). */
async function builtModules(): Promise<string[]> {
  const cli = join(out, 'cli');
  const chunks = (await readdir(join(cli, 'chunks'))).filter((f) => f.endsWith('.mjs')).map((f) => join(cli, 'chunks', f));
  return [join(cli, 'main.mjs'), ...chunks];
}

describe('the compiled CLI', () => {
  it('bundles zod and the logger instead of importing them from node_modules', async () => {
    const imported = new Set<string>();
    for (const file of await builtModules()) {
      for (const m of (await readFile(file, 'utf8')).matchAll(/(?:from|import)\s*\(?\s*"([^".][^"]*)"/g)) imported.add(m[1] ?? '');
    }
    expect([...imported].filter((name) => name === 'zod' || name.startsWith('zod/') || name.startsWith('@aws-lambda-powertools/logger'))).toEqual([]);
    // What stays external is loaded from node_modules (the SDK, for the commands that reach a bucket).
    expect([...imported].some((name) => name.startsWith('@aws-sdk/client-s3'))).toBe(true);
  });

  it('encrypts and decrypts a file byte-exact (cipher threads, file stdin)', async () => {
    const plain = join(out, 'plain');
    const bytes = Buffer.from(Array.from({ length: 3 * 1024 * 1024 + 5 }, (_, i) => (i * 7 + 3) & 0xff));
    await writeFile(plain, bytes);
    const runner = join(out, 'run.mjs');
    await writeFile(runner, `const { main } = await import(${JSON.stringify(pathToFileURL(join(out, 'cli', 'main.mjs')).href)});\nprocess.exitCode = await main(process.argv.slice(2));\n`);
    const env = { ...process.env, S3_STORAGE_ENCRYPTION_KEY: SECRET };
    const ident = '--dataspace logs --segment built-cli';
    await runChecked('sh', ['-c', `"${process.execPath}" run.mjs encrypt ${ident} < plain > sealed && "${process.execPath}" run.mjs decrypt ${ident} < sealed > back`], { cwd: out, env, timeoutMs: 60_000 });
    const sealed = await readFile(join(out, 'sealed'));
    expect(sealed.length).toBe(48 + bytes.length + 16 * 4); // header, and a tag per 1 MiB chunk (docs/FORMAT.md)
    const back = await readFile(join(out, 'back'));
    expect(createHash('sha256').update(back).digest('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
  });
});
