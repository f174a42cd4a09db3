// The HTML report is self-contained (no scripts, no external assets) and escapes what it prints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { niceTicks } from '../bench/lib/chart-layout.js';
import { renderDemoReport } from '../demo/report.js';
import { demoReportFixture } from './helpers/demo-report-fixture.js';
import { barChartSvg, heatColour, heatmapSvg, htmlPage, isoTime, lineChartSvg, tableHtml } from '../bench/lib/report.js';

test('a report page references nothing outside itself and escapes text', () => {
  const R = [
    [0.9, 0.1],
    [0.8, 0.95],
  ];
  const page = htmlPage('<b>t</b>', 'intro & more', [
    { heading: 'heat', html: heatmapSvg(R, { title: 'R', rowLabels: ['0', '1'], colLabels: ['a', 'b'] }) },
    { heading: 'lines', html: lineChartSvg([{ name: 'x<y', values: [0.5, null, 0.7] }], { title: 'l', xLabels: ['0', '1', '2'] }) },
    { heading: 'bars', html: barChartSvg([{ name: 'up', values: [3, 0, 5] }], { title: 'b', xLabels: ['0', '1', '2'] }) },
    { heading: 'table', html: tableHtml(['k', 'v'], [['"q"', 0.12345], ['n', null]]) },
  ]);
  // the only URL is the SVG namespace identifier, which browsers never fetch
  const urls = page.match(/https?:\/\/[^\s"'<>]+/g) ?? [];
  assert.deepEqual([...new Set(urls)], ['http://www.w3.org/2000/svg']);
  assert.ok(!/<script|<link|<img|@import|url\(/i.test(page));
  assert.ok(page.includes('&lt;b&gt;t&lt;/b&gt;'));
  assert.ok(page.includes('x&lt;y'));
  assert.ok(page.includes('&quot;q&quot;'));
  assert.ok(page.includes('0.123'));
  // one heat-map cell per matrix entry, each with its exact value in a tooltip
  assert.equal((heatmapSvg(R, { title: 'R', rowLabels: [], colLabels: [] }).match(/<rect x="\d+" y="\d+" width="48"/g) ?? []).length, 4);
  assert.ok(page.includes('0.9500'));
  // the null point breaks the line: two points, no segment through the gap
  const line = lineChartSvg([{ name: 's', values: [0.5, null, 0.7] }], { title: 'l', xLabels: ['0', '1', '2'] });
  assert.equal((line.match(/<circle/g) ?? []).length, 2);
  assert.ok(!/<path d=/.test(line));
  // dashedBefore: the segments up to the site's appearance are dashed, the rest solid, one colour
  const site = lineChartSvg([{ name: 's', colour: '#123456', dashedBefore: 2, values: [0.2, 0.4, 0.9, 0.9] }], { title: 'l', xLabels: ['0', '1', '2', '3'] });
  const paths = [...site.matchAll(/<path d="([^"]*)" fill="none" stroke="([^"]*)"[^>]*?( stroke-dasharray="[^"]*")?>/g)];
  assert.deepEqual(paths.map((p) => [(p[1].match(/L/g) ?? []).length, p[2], !!p[3]]), [[2, '#123456', true], [1, '#123456', false]]);
  assert.equal((site.match(/fill="#fff" stroke="#123456"/g) ?? []).length, 2, 'points before the appearance are hollow');
});

test('axis ticks are 1, 2 or 5 x 10^k and cover the data', () => {
  assert.deepEqual(niceTicks(0, 1092, 7).ticks, [0, 200, 400, 600, 800, 1000, 1200]);
  assert.deepEqual(niceTicks(0.17, 0.92, 7).ticks, [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(0.83, 0.87, 6).ticks, [0.83, 0.84, 0.85, 0.86, 0.87]);
  assert.deepEqual(niceTicks(5, 5).ticks, [4.5, 5, 5.5]);
  for (const [lo, hi] of [[0, 1], [3, 273], [0.001, 0.0042], [-7, 13], [0, 1e6 + 1]]) {
    const t = niceTicks(lo, hi, 6);
    assert.ok(t.ticks.length >= 2 && t.ticks.length <= 6, `${lo}..${hi}: ${t.ticks}`);
    assert.ok(t.lo <= lo && t.hi >= hi, `${lo}..${hi} covered by ${t.ticks}`);
    const mantissa = t.step / 10 ** Math.floor(Math.log10(t.step) + 1e-9);
    assert.ok([1, 2, 5].some((m) => Math.abs(mantissa - m) < 1e-9), `step ${t.step}`);
  }
});

test('report times are ISO-8601 UTC whether given as epoch ms or a date string', () => {
  assert.equal(isoTime(Date.UTC(2026, 10, 30, 12, 0, 5)), '2026-11-30T12:00:05Z');
  assert.equal(isoTime('2026-11-30T12:00:05.250Z'), '2026-11-30T12:00:05.250Z');
  assert.equal(isoTime(null), '–');
  assert.equal(isoTime('soon'), 'soon');
});

test('rejected rows are marked for highlighting; the heat map hatches marked cells only', () => {
  const t = tableHtml(['task', 'decision'], [['a', 'accepted'], ['b', 'REJECTED']], 3, (i) => (i === 1 ? 'bad' : undefined));
  assert.deepEqual([...t.matchAll(/<tr( class="bad")?><td>(\w)/g)].map((m) => [m[2], !!m[1]]), [['a', false], ['b', true]]);
  const h = heatmapSvg([[0.9, 0.2], [0.9, 0.8]], { title: 'R', rowLabels: ['0', '1'], colLabels: ['a', 'b'], marked: (i, j) => i < j, markedLabel: 'before' });
  assert.equal((h.match(/fill-opacity="0.55"/g) ?? []).length, 2, 'one veil on the one marked cell, one in the legend swatch');
  assert.match(h, /<title>0 \/ b: 0.2000 \(before\)<\/title>/);
});

test('heat colours run from light (0) to dark (1) and handle NaN', () => {
  const lum = (c: string) => {
    const [r, g, b] = c.match(/\d+/g)!.map(Number);
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  assert.ok(lum(heatColour(0)) > lum(heatColour(0.5)));
  assert.ok(lum(heatColour(0.5)) > lum(heatColour(1)));
  assert.equal(heatColour(NaN), '#eeeeee');
  assert.equal(heatColour(2), heatColour(1));
});

test('the demo report: rejected gate decisions highlighted (not kept-within-noise ones), end state as tables with ISO times', () => {
  const page = renderDemoReport(demoReportFixture());
  const rows = [...page.matchAll(/<tr( class="bad")?><td class="num">(\d+)<\/td><td>([^<]*)<\/td><td>([^<]*)<\/td><td>([^<]*)<\/td>/g)].map((m) => ({ bad: !!m[1], round: m[2], task: m[3], decision: m[5] }));
  assert.deepEqual(rows.filter((r) => r.bad), [{ bad: true, round: '3', task: 'rot-060', decision: 'REJECTED' }]);
  assert.ok(rows.some((r) => !r.bad && r.decision === 'kept (within noise)'));
  assert.ok(!page.includes('<pre>'), 'no raw JSON dump');
  assert.match(page, /<th>last sync<\/th><td>2026-11-30T12:00:00Z, exit 0<\/td>/);
  assert.ok(!/\b1\d{12}\b/.test(page), 'no epoch-ms times');
});
