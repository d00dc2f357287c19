// The dashboard in a real browser: `cfrec serve` on a generated log, the page
// opened in Debian's headless Chromium through playwright-core. Checks that
// every chart gets data points, that the user view shows recommendations for
// a known user and a clear message for an unknown one, and that the page
// logs no console errors. Saves a screenshot.
//   node dashboard_browser_test.cjs --cfrec BIN --web DIR --out DIR
'use strict';

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { parseArgs, until, startService } = require('./serve_fixture.cjs');

const CHROMIUM = '/usr/bin/chromium';
const CHARTS = ['events', 'lag', 'dead', 'model', 'losses', 'samples', 'policy', 'auc',
  'ndcg', 'http-rate', 'http-latency'];

async function main() {
  const args = parseArgs(['cfrec', 'web', 'out']);
  const { chromium } = require(path.join(args.web, 'node_modules', 'playwright-core'));
  assert.ok(fs.existsSync(CHROMIUM), CHROMIUM + ' is missing (apt-get install chromium)');
  const service = await startService(args.cfrec, path.join(args.out, 'dashboard-test'));
  const profile = fs.mkdtempSync(path.join(args.out, 'dashboard-test', 'chromium-'));
  let context = null;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = context.pages()[0] || await context.newPage();
    const problems = [];
    const badUser = 'no-such-user-42';
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      // The browser itself logs the 404 that the unknown user's query gets
      // by design; any other error is the page's.
      if (m.location().url.includes('user_id=' + badUser) && /status of 404/.test(m.text())) return;
      problems.push('console: ' + m.text() + ' at ' + m.location().url);
    });
    page.on('pageerror', (e) => problems.push('page error: ' + e.message));
    // Nothing may come from anywhere but the service.
    page.on('request', (r) => {
      if (!r.url().startsWith(service.url + '/')) problems.push('outside request: ' + r.url());
    });

    await page.goto(service.url + '/');
    const points = () => page.evaluate((ids) => ids.map((id) =>
      Number(document.getElementById('chart-' + id).dataset.points || 0)), CHARTS);
    await until('data points in every chart', 90000, async () => {
      const p = await points();
      const empty = CHARTS.filter((id, i) => p[i] === 0);
      if (empty.length) throw new Error('no points yet in ' + empty.join(', '));
      return true;
    });
    // Each chart is a uPlot canvas.
    assert.strictEqual(await page.locator('figure.chart canvas').count() >= CHARTS.length, true);

    // An unknown user: a clear message, no table.
    await page.fill('#user-id', badUser);
    await page.click('#user-form button');
    const error = page.locator('#user-error');
    await error.waitFor({ state: 'visible', timeout: 10000 });
    assert.match(await error.textContent(), /'no-such-user-42' is not known to the model/);
    assert.strictEqual(await page.locator('#user-view').isHidden(), true);

    // A known user: recommendations with their score breakdown.
    await until('the model to know ' + service.user, 60000, async () =>
      (await fetch(service.url + '/v1/explain?user_id=' + encodeURIComponent(service.user))).ok);
    await page.fill('#user-id', service.user);
    await page.click('#user-form button');
    await page.locator('#user-view').waitFor({ state: 'visible', timeout: 10000 });
    assert.strictEqual(await error.isHidden(), true);
    const rows = page.locator('#user-items tbody tr');
    assert.ok(await rows.count() > 0, 'no recommendations for ' + service.user);
    assert.match(await rows.first().locator('td').nth(4).textContent(), /item part|ranker only/);
    assert.match(await page.textContent('#user-summary'), new RegExp('User ' + service.user));
    await until('trending items', 20000, async () =>
      (await page.locator('#trending tbody tr td').count()) >= 5);

    // Let the lines grow a little for the picture.
    await until('a few points in the charts', 30000, async () => Math.min(...await points()) >= 8);
    const shot = path.join(args.out, 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.deepStrictEqual(problems, []);
    console.log('dashboard: charts ' + (await points()).join('/') + ' points; user ' +
      service.user + ' has ' + await rows.count() + ' items; screenshot ' + shot);
  } finally {
    if (context) await context.close();
    const exit = await service.stop();
    if (exit.code !== 0) console.error(service.log());
  }
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
