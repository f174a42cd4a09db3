// The HTML report is self-contained (no scripts, no external assets) and escapes what it prints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { barChartSvg, heatColour, heatmapSvg, htmlPage, lineChartSvg, tableHtml } from '../bench/lib/report.js';

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
  assert.equal((heatmapSvg(R, { title: 'R', rowLabels: [], colLabels: [] }).match(/<rect x="\d+" y="\d+" width="40"/g) ?? []).length, 4);
  assert.ok(page.includes('0.9500'));
  // the null point breaks the line: two points, no segment through the gap
  const line = lineChartSvg([{ name: 's', values: [0.5, null, 0.7] }], { title: 'l', xLabels: ['0', '1', '2'] });
  assert.equal((line.match(/<circle/g) ?? []).length, 2);
  const d = /<path d="([^"]*)"/.exec(line)![1];
  assert.equal((d.match(/M/g) ?? []).length, 2);
  assert.ok(!d.includes('L'));
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
