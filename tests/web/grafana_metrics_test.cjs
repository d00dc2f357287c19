// Every metric that deploy/grafana/cfrec.json queries is one that the real
// `cfrec serve` exposes at GET /metrics, with the label values the queries
// select on.
//   node grafana_metrics_test.cjs --cfrec BIN --dashboard FILE --out DIR
'use strict';

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { parseArgs, until, startService } = require('./serve_fixture.cjs');

// [{name, labels: {k: v}}] of the series selectors in a PromQL expression.
function selectors(expr) {
  const out = [];
  const re = /\b(cfrec_[a-zA-Z0-9_:]*)(\{([^}]*)\})?/g;
  for (let m; (m = re.exec(expr)) !== null;) {
    const labels = {};
    for (const l of (m[3] || '').split(',').filter((s) => s.trim())) {
      const lm = /^\s*([a-zA-Z_]\w*)\s*=\s*"([^"]*)"\s*$/.exec(l);
      assert.ok(lm, 'only exact label matchers are checked: ' + l);
      labels[lm[1]] = lm[2];
    }
    out.push({ name: m[1], labels: labels });
  }
  return out;
}

// name -> [labels] of the samples of a Prometheus text exposition.
function exposed(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{(.*)\})? /.exec(line);
    assert.ok(m, 'bad exposition line: ' + line);
    const labels = {};
    for (const lm of (m[3] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]] = lm[2];
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push(labels);
  }
  return out;
}

async function main() {
  const args = parseArgs(['cfrec', 'dashboard', 'out']);
  const dashboard = JSON.parse(fs.readFileSync(args.dashboard, 'utf8'));
  const wanted = [];
  for (const panel of dashboard.panels) {
    for (const target of panel.targets || []) {
      for (const s of selectors(target.expr)) wanted.push({ panel: panel.title, ...s });
    }
  }
  assert.ok(wanted.length >= 12, 'the dashboard queries ' + wanted.length + ' series');

  const service = await startService(args.cfrec, path.join(args.out, 'grafana-test'));
  try {
    // Requests and online quality make their series appear.
    await until('online quality and request latencies', 90000, async () => {
      const model = await (await fetch(service.url + '/v1/model')).json();
      return model.online_quality.lists_judged > 0;
    });
    const text = await (await fetch(service.url + '/metrics')).text();
    fs.writeFileSync(path.join(args.out, 'grafana-test', 'metrics.txt'), text);
    const series = exposed(text);
    const missing = wanted.filter((w) => !(series.get(w.name) || []).some((labels) =>
      Object.entries(w.labels).every(([k, v]) => labels[k] === v)));
    assert.deepStrictEqual(missing.map((w) => w.panel + ': ' + w.name + JSON.stringify(w.labels)),
      []);
    console.log('grafana: ' + wanted.length + ' series of ' + dashboard.panels.length +
      ' panels, all exposed');
  } finally {
    await service.stop();
  }
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
