/**
 * `tsx bench/support/profileSummary.ts FILE.cpuprofile [N]`: what a `node --cpu-prof` profile of a bench child
 * spent its samples on — self time by function (and the file it lives in), and by package — so the README can
 * name where the time goes. Idle time ("(idle)") is listed but left out of the shares.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}
interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
  readonly startTime: number;
  readonly endTime: number;
}

const [file, top = '30'] = process.argv.slice(2);
if (file === undefined) throw new Error('usage: profileSummary FILE.cpuprofile [N]');
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map<number, number>();
profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

/** Where a function lives: the package under node_modules, node's own code, or our source. */
function where(url: string): string {
  if (url === '') return '(native/vm)';
  if (url.startsWith('node:')) return url;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  return pkg ?? url.replace(/^.*\/(?=[^/]+$)/, '');
}

const fns = new Map<string, number>();
const pkgs = new Map<string, number>();
let idle = 0;
let total = 0;
for (const [id, us] of selfUs) {
  const node = byId.get(id);
  if (node === undefined) continue;
  const { functionName, url, lineNumber } = node.callFrame;
  if (functionName === '(idle)') {
    idle += us;
    continue;
  }
  total += us;
  const key = `${functionName || '(anonymous)'}  ${where(url)}${url ? `:${lineNumber + 1}` : ''}`;
  fns.set(key, (fns.get(key) ?? 0) + us);
  pkgs.set(where(url), (pkgs.get(where(url)) ?? 0) + us);
}
const wall = (profile.endTime - profile.startTime) / 1e6;
console.log(`${file}: ${wall.toFixed(2)} s wall, ${(total / 1e6).toFixed(2)} s busy on the main thread, ${(idle / 1e6).toFixed(2)} s idle`);
const show = (m: Map<string, number>, n: number) =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .forEach(([k, us]) => console.log(`${(us / 1e6).toFixed(3).padStart(8)} s ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`));
console.log('\nself time by function');
show(fns, Number(top));
console.log('\nself time by package / file');
show(pkgs, 15);
