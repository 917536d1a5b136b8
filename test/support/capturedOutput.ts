/** Everything written to stdout and stderr while `run` runs (EMF metric lines, log lines), as one string. */
import { vi } from 'vitest';

export async function capturedOutput(run: () => unknown): Promise<string> {
  const chunks: string[] = [];
  const capture = (chunk: string | Uint8Array) => (chunks.push(String(chunk)), true);
  const out = vi.spyOn(process.stdout, 'write').mockImplementation(capture);
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(capture);
  try {
    await run();
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
  return chunks.join('');
}
