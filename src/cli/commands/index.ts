/**
 * The command table of the CLI; each command lives in its own module, loaded only when it runs (or for the
 * help text), so `encrypt` does not pay for the SDK clients, the local servers and the handlers that `serve`
 * and `invoke` need.
 */
import type { Command } from '../command.ts';

export const commands: Readonly<Record<string, () => Promise<Command>>> = {
  encrypt: async () => (await import('./encrypt.ts')).encryptCommand,
  decrypt: async () => (await import('./encrypt.ts')).decryptCommand,
  key: async () => (await import('./key.ts')).keyCommand,
  enqueue: async () => (await import('./enqueue.ts')).enqueueCommand,
  ship: async () => (await import('./ship.ts')).shipCommand,
  invoke: async () => (await import('./invoke.ts')).invokeCommand,
  serve: async () => (await import('./serve.ts')).serveCommand,
  restore: async () => (await import('./restore.ts')).restoreCommand,
  verify: async () => (await import('./verify.ts')).verifyCommand,
  delete: async () => (await import('./delete.ts')).deleteCommand,
  undelete: async () => (await import('./undelete.ts')).undeleteCommand,
  status: async () => (await import('./status.ts')).statusCommand,
  registry: async () => (await import('./registry.ts')).registryCommand,
  redrive: async () => (await import('./redrive.ts')).redriveCommand,
  smoke: async () => (await import('./smoke.ts')).smokeCommand,
};
