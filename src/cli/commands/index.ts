/** The command table of the CLI; each command lives in its own module. */
import type { Command } from '../command.ts';
import { deleteCommand } from './delete.ts';
import { decryptCommand, encryptCommand } from './encrypt.ts';
import { enqueueCommand } from './enqueue.ts';
import { invokeCommand } from './invoke.ts';
import { keyCommand } from './key.ts';
import { serveCommand } from './serve.ts';
import { shipCommand } from './ship.ts';
import { smokeCommand } from './smoke.ts';
import { statusCommand } from './status.ts';
import { redriveCommand } from './redrive.ts';
import { registryCommand } from './registry.ts';
import { restoreCommand } from './restore.ts';
import { verifyCommand } from './verify.ts';
import { undeleteCommand } from './undelete.ts';

export const commands: Readonly<Record<string, Command>> = {
  encrypt: encryptCommand,
  decrypt: decryptCommand,
  key: keyCommand,
  enqueue: enqueueCommand,
  ship: shipCommand,
  invoke: invokeCommand,
  serve: serveCommand,
  restore: restoreCommand,
  verify: verifyCommand,
  delete: deleteCommand,
  undelete: undeleteCommand,
  status: statusCommand,
  registry: registryCommand,
  redrive: redriveCommand,
  smoke: smokeCommand,
};
