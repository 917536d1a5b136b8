/**
 * The peers bench's chart, drawn by vega-lite (compiled to vega, rendered to SVG headless by vega's View):
 * throughput, client CPU per GiB and peak RSS against segment size, one line per client, one column per
 * server and direction.
 */
import { compile, type TopLevelSpec } from 'vega-lite';
import { parse, View } from 'vega';

export interface ChartPoint {
  readonly server: string;
  readonly direction: 'upload' | 'restore';
  readonly client: string;
  readonly sizeMiB: number;
  readonly mibps: number;
  readonly cpuPerGiB: number;
  readonly rssMiB: number;
}

const METRICS = [
  { field: 'mibps', title: 'MiB/s (wall)' },
  { field: 'cpuPerGiB', title: 'client CPU s/GiB' },
  { field: 'rssMiB', title: 'peak RSS MiB' },
] as const;

export async function renderChart(points: readonly ChartPoint[], title: string): Promise<string> {
  const values = points.map((p) => ({ ...p, panel: `${p.server} · ${p.direction}` }));
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, fontSize: 13 },
    data: { values },
    vconcat: METRICS.map((metric) => ({
      facet: { column: { field: 'panel', type: 'nominal', title: null, sort: ['s3rver · upload', 's3rver · restore', 'fauxqs · upload', 'fauxqs · restore'] } },
      spec: {
        width: 170,
        height: 140,
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'sizeMiB', type: 'quantitative', scale: { type: 'log', base: 2 }, title: 'segment MiB', axis: { values: [16, 64, 256, 1024, 4096] } },
          y: { field: metric.field, type: 'quantitative', title: metric.title },
          color: { field: 'client', type: 'nominal', title: 'client', sort: ['ours (encrypted)', 'aws s3 cp (plain)', 'rclone crypt', 'curl (1 PUT/GET)'] },
          strokeDash: { field: 'client', type: 'nominal', legend: null },
        },
      },
    })),
    config: { font: 'sans-serif', background: 'white' },
  };
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}
