// `npm run build`: one esbuild bundle per function, dist/<fn>/index.mjs (ESM, node22, minified) and the chunks
// it imports only when needed (dist/<fn>/chunks/), with the AWS SDK bundled in: it pins the SDK version we test
// against (Lambda's built-in SDK moves on its own), and tree-shaking keeps only the clients a function uses.
// Metafiles (dist/<fn>/meta.json) feed the size bench.
import { build } from 'esbuild';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';

export const FUNCTIONS = ['upload', 'fetch', 'cleanup'];

/** `options.functions`: which of FUNCTIONS (all by default); `options.plugins`: esbuild plugins (the peers
 *  bench builds an upload bundle with lib-storage's writer in place of ours); `options.splitting: false`: one
 *  file per function, as before the split (the bundle bench compares both). */
export async function buildAll(outdir = 'dist', options = {}) {
  const sizes = {};
  for (const fn of options.functions ?? FUNCTIONS) {
    await rm(`${outdir}/${fn}`, { recursive: true, force: true }); // no chunk of an earlier build is packaged
    const result = await build({
      entryPoints: { index: `functions/${fn}.ts` },
      outdir: `${outdir}/${fn}`,
      outExtension: { '.js': '.mjs' },
      // Code split at the SDK's and our dynamic imports (the KMS client, the credential providers a Lambda
      // function never uses, the STS/SSO clients behind them): a cold start compiles only what it runs
      // (`npm run bench bundle` times both ways).
      splitting: options.splitting ?? true,
      chunkNames: 'chunks/[name]-[hash]',
      bundle: true,
      platform: 'node',
      target: 'node22',
      format: 'esm',
      minify: true,
      sourcemap: 'external',
      metafile: true,
      legalComments: 'none',
      logLevel: 'error',
      plugins: options.plugins ?? [],
      // The packages' ES module builds, not their CommonJS ones: esbuild can tree-shake those (the S3 client's
      // 100+ commands and their schemas down to the few we send), which cut each bundle from ~850 to ~670 KiB
      // and module init by a fifth (npm run bench bundle).
      mainFields: ['module', 'main'],
      // Some dependencies are CommonJS and call require(): give the ESM bundle one.
      banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    });
    await mkdir(`${outdir}/${fn}`, { recursive: true });
    await writeFile(`${outdir}/${fn}/meta.json`, JSON.stringify(result.metafile));
    // What the function's zip carries: the entry and every chunk.
    sizes[fn] = Object.entries(result.metafile.outputs).reduce((sum, [file, o]) => sum + (file.endsWith('.mjs') ? o.bytes : 0), 0);
  }
  return sizes;
}

/**
 * The CLI, compiled for bin/bucket-storage.mjs: our TypeScript as ES modules (packages stay in node_modules,
 * where the CLI runs from), one chunk per command, so `encrypt` starts in a fraction of the time the
 * TypeScript loader takes (bin runs this only while it is newer than the sources; tsx otherwise).
 */
export async function buildCli(outdir = 'dist') {
  await rm(`${outdir}/cli`, { recursive: true, force: true }); // no chunks of earlier builds left beside the new ones
  await build({
    entryPoints: { main: 'src/cli/main.ts' },
    outdir: `${outdir}/cli`,
    entryNames: '[name]',
    chunkNames: 'chunks/[name]-[hash]',
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: true,
    external: cliExternal(),
    platform: 'node',
    target: 'node20',
    format: 'esm',
    sourcemap: 'linked',
    logLevel: 'error',
  });
}

/**
 * Packages the CLI loads from node_modules at run time: all but those every command loads at start (zod for the
 * configuration, the logger), which are bundled. Loaded as packages, zod alone is 97 ES modules to resolve and
 * compile: `encrypt` of a 1-byte file took 0.45–0.49 s against 0.29–0.38 s with both bundled (/usr/bin/time,
 * 2026-11-30, docs/DEVELOPMENT.md goal 5). The rest (the SDK, the local servers) only some commands load.
 */
function cliExternal() {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  const bundled = ['zod', '@aws-lambda-powertools/logger'];
  return Object.keys({ ...pkg.dependencies, ...pkg.devDependencies })
    .filter((name) => !bundled.includes(name))
    .flatMap((name) => [name, `${name}/*`]);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const sizes = await buildAll();
  for (const [fn, bytes] of Object.entries(sizes)) console.log(`dist/${fn}/  ${(bytes / 1024).toFixed(0)} KiB (index.mjs and its chunks)`);
  await buildCli();
  console.log('dist/cli/main.mjs (the CLI, run by bin/bucket-storage.mjs while it is newer than the sources)');
}
