/**
 * One progress line on a terminal (stderr), rewritten in place at most 5 times a second; notes are printed
 * above it. Off a terminal it prints nothing (callers log events instead).
 */
export class ProgressLine {
  readonly tty: boolean;
  private text = '';
  private last = 0;
  constructor(private readonly out: NodeJS.WritableStream) {
    this.tty = 'isTTY' in out && out.isTTY === true;
  }

  update(text: string): void {
    this.text = text;
    if (!this.tty || Date.now() - this.last < 200) return;
    this.last = Date.now();
    this.out.write(`\r\x1b[K${text}`);
  }

  /** A line of its own above the progress line. */
  note(text: string): void {
    if (this.tty) this.out.write(`\r\x1b[K${text}\n${this.text}`);
  }

  end(): void {
    if (this.tty && this.text !== '') this.out.write(`\r\x1b[K${this.text}\n`);
  }
}
