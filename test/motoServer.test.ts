/** Tests that need moto_server fail, with the install instruction, on a machine that lacks it: never a skip. */
import { afterEach, expect, it } from 'vitest';
import { MOTO_MISSING, startMoto } from './support/motoServer.ts';

const path = process.env.PATH;
afterEach(() => {
  process.env.PATH = path;
});

it('a missing moto_server is an error that says how to install it', async () => {
  process.env.PATH = '/nonexistent';
  await expect(startMoto()).rejects.toThrow(MOTO_MISSING);
  expect(MOTO_MISSING).toMatch(/pip install 'moto\[server\]/);
});
