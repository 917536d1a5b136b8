/**
 * `bucket-storage <command> --help` for every command: exit 0, the usage line, one line per option, an example
 * that names the command. `restore --help` (which used to fail) also as an operator runs it, in a child process.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { commands } from '../src/cli/commands/index.ts';
import { main } from '../src/cli/main.ts';
import { runProcess } from './support/runProcess.ts';

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const code = await main(argv, { stdout, stderr, env: {} });
  return { code, stdout: String(stdout.read() ?? ''), stderr: String(stderr.read() ?? '') };
}

describe('--help', () => {
  it('covers every command, those of every issue included', () => {
    expect(Object.keys(commands).sort()).toEqual(
      ['decrypt', 'delete', 'encrypt', 'enqueue', 'invoke', 'key', 'redrive', 'registry', 'restore', 'serve', 'ship', 'smoke', 'status', 'undelete', 'verify'].sort(),
    );
  });

  it.each(Object.keys(commands))('%s --help: usage, every option on a line of its own, an example; exit 0', async (name) => {
    const command = await commands[name]!();
    for (const argv of [[name, '--help'], [name, '-h'], ['help', name]]) {
      const { code, stdout, stderr } = await run(argv);
      expect(code).toBe(0);
      expect(stderr).toBe('');
      expect(stdout.split('\n')[0]).toBe(`usage: bucket-storage ${command.usage}`);
      for (const option of Object.keys(command.options)) expect(stdout).toMatch(new RegExp(`^  --${option} +\\S.*$`, 'm'));
      expect(stdout).toMatch(new RegExp(`^examples?:\\n  bucket-storage ${name}\\b`, 'm'));
    }
  });

  it('--help wins over missing or bad options, not after --', async () => {
    expect((await run(['restore', '--segment', 'x', '--help'])).code).toBe(0);
    expect((await run(['restore', '--', '--help'])).code).toBe(2);
  });

  it('the overview lists every command; an unknown command exits 2', async () => {
    const { code, stdout } = await run(['--help']);
    expect(code).toBe(0);
    for (const name of Object.keys(commands)) expect(stdout).toMatch(new RegExp(`^  ${name}\\b`, 'm'));
    expect((await run(['help', 'frobnicate'])).code).toBe(2);
    expect((await run(['constructor'])).code).toBe(2);
  });

  it('restore --help as a child process', async () => {
    const run = await runProcess(process.execPath, ['bin/bucket-storage.mjs', 'restore', '--help'], { env: { PATH: process.env.PATH } });
    expect(run.status).toBe(0);
    const out = run.stdout;
    expect(out).toMatch(/^usage: bucket-storage restore --dataspace D --segment S --to URL/);
    expect(out).toMatch(/^ {2}--range +inclusive byte range/m);
  });
});
