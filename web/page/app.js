// The cfrec dashboard: a client of the service's public JSON API. Every
// 2 s it reads GET /v1/metrics (every metric of GET /metrics) and
// GET /v1/model, turns counters into rates between successive reads and
// latency histograms into quantiles, and appends a point to each chart.
// Trending items and dead letters are read every 6 s; the user view on
// demand. Text from the service is only ever set as textContent.
'use strict';

(function () {
  const POLL_MS = 2000;
  const SLOW_POLL_EVERY = 3;  // trending and dead letters every 3rd poll
  const KEEP_POINTS = 450;    // 15 minutes of points
  const TABLE_WINDOW_S = 30;  // the route table's rates and quantiles

  // ------------------------------------------------------------ metrics

  // name -> family of one GET /v1/metrics answer.
  function indexFamilies(doc) {
    const byName = new Map();
    for (const f of doc.families) byName.set(f.name, f);
    return byName;
  }

  function matches(labels, want) {
    for (const k in want) if (labels[k] !== want[k]) return false;
    return true;
  }

  // Sum of the samples of `name` whose labels include `want`; null when the
  // family is absent.
  function value(families, name, want) {
    const f = families.get(name);
    if (!f) return null;
    let sum = 0;
    let any = false;
    for (const s of f.samples) {
      if (!matches(s.labels, want || {}) || s.value === null) continue;
      sum += s.value;
      any = true;
    }
    return any ? sum : null;
  }

  // Per-second rate of a counter between two reads. A series absent from
  // the older read was created since, at zero.
  function rate(prev, cur, dt, name, want) {
    if (!prev || dt <= 0) return null;
    const b = value(cur, name, want);
    if (b === null) return null;
    const a = value(prev, name, want);
    const base = a === null ? 0 : a;
    return b < base ? null : (b - base) / dt;
  }


  // Cumulative bucket counts of histogram `name`, summed over the samples
  // whose labels include `want`.
  function buckets(families, name, want) {
    const f = families && families.get(name);
    if (!f) return null;
    let cum = null;
    for (const s of f.samples) {
      if (!matches(s.labels, want || {})) continue;
      if (cum === null) cum = new Array(s.cumulative.length).fill(0);
      s.cumulative.forEach((c, i) => { cum[i] += c; });
    }
    return cum === null ? null : { bounds: f.bounds, cum: cum };
  }

  // The q-quantile of the observations between two reads, interpolated
  // within a bucket as Prometheus' histogram_quantile does.
  function quantile(prev, cur, name, want, q) {
    const b = buckets(cur, name, want);
    if (!b) return null;
    const a = buckets(prev, name, want);
    const delta = b.cum.map((c, i) => c - (a ? a.cum[i] || 0 : 0));
    const total = delta[delta.length - 1];
    if (!(total > 0)) return null;
    const rank = q * total;
    for (let i = 0; i < delta.length; i++) {
      if (delta[i] < rank) continue;
      if (i === b.bounds.length) return b.bounds[b.bounds.length - 1];
      const lo = i === 0 ? 0 : b.bounds[i - 1];
      const below = i === 0 ? 0 : delta[i - 1];
      const inBucket = delta[i] - below;
      const frac = inBucket > 0 ? (rank - below) / inBucket : 1;
      return lo + (b.bounds[i] - lo) * frac;
    }
    return null;
  }

  function labelValues(families, name, label) {
    const f = families.get(name);
    const out = new Set();
    if (f) for (const s of f.samples) if (label in s.labels) out.add(s.labels[label]);
    return Array.from(out).sort();
  }

  // ------------------------------------------------------------- charts

  const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd'];

  // One uPlot chart over time with fixed series.
  class Chart {
    constructor(id, title, series, options) {
      this.el = document.getElementById(id);
      this.x = [];
      this.ys = series.map(() => []);
      const opts = options || {};
      const values = (u, ticks) => ticks.map(format);
      const axes = [{}, { size: 56, values: values }];
      const scales = { x: { time: true } };
      if (opts.rightScale) {
        axes.push({ side: 1, scale: opts.rightScale, grid: { show: false }, size: 56, values: values });
        scales[opts.rightScale] = {};
      }
      this.plot = new uPlot({
        title: title,
        width: Math.max(300, this.el.clientWidth - 12),
        height: 200,
        scales: scales,
        axes: axes,
        series: [{}].concat(series.map((s, i) => ({
          label: s.label,
          scale: s.scale || 'y',
          stroke: PALETTE[i % PALETTE.length],
          width: 1.5,
          dash: s.dash,
          spanGaps: true,
          value: (u, v) => (v === null || v === undefined ? '–' : format(v)),
        }))),
      }, [this.x].concat(this.ys), this.el);
      this.el.dataset.points = '0';
    }

    push(t, values) {
      this.x.push(t);
      values.forEach((v, i) => this.ys[i].push(v === undefined ? null : v));
      if (this.x.length > KEEP_POINTS) {
        this.x.shift();
        this.ys.forEach((y) => y.shift());
      }
      this.plot.setData([this.x].concat(this.ys));
      // The legend shows the newest values unless the cursor is on the chart.
      if (!(this.plot.cursor.left >= 0)) this.plot.setLegend({ idx: this.x.length - 1 });
      // Points that carry a value, for tests and for the eye.
      let points = 0;
      for (const y of this.ys) for (const v of y) if (v !== null) points++;
      this.el.dataset.points = String(points);
    }

    resize() {
      this.plot.setSize({ width: Math.max(300, this.el.clientWidth - 12), height: 200 });
    }
  }

  function format(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return '–';
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(2) + 'M';
    if (a >= 1e4) return (v / 1e3).toFixed(1) + 'k';
    if (a >= 100 || Number.isInteger(v)) return v.toFixed(0);
    if (a >= 1) return v.toFixed(2);
    return v.toPrecision(3);
  }

  const charts = {
    events: new Chart('chart-events', 'Events applied / s', [{ label: 'applied/s' }]),
    lag: new Chart('chart-lag', 'Consumer lag (messages)', [{ label: 'lag' }]),
    dead: new Chart('chart-dead', 'Dead letters and held clicks', [
      { label: 'dead letters (total)' }, { label: 'clicks held' }]),
    model: new Chart('chart-model', 'Model version and age', [
      { label: 'version' }, { label: 'age (s)', scale: 'age' }], { rightScale: 'age' }),
    losses: new Chart('chart-losses', 'Losses (moving averages)', [
      { label: 'ranker' }, { label: 'SEM p_R' }, { label: 'SEM p_S' }]),
    samples: new Chart('chart-samples', 'Samples trained / s by source', [
      { label: 'observed' }, { label: 'counterfactual' }, { label: 'replayed events' }]),
    policy: new Chart('chart-policy', 'Counterfactual mix and policy', [
      { label: 'mix ratio' }, { label: 'reward', scale: 'r' }, { label: 'baseline', scale: 'r', dash: [4, 3] }],
      { rightScale: 'r' }),
    auc: new Chart('chart-auc', 'Rolling AUC', [
      { label: 'model' }, { label: 'decayed CTR', dash: [4, 3] }]),
    ndcg: new Chart('chart-ndcg', 'Rolling nDCG@10', [
      { label: 'model' }, { label: 'decayed CTR', dash: [4, 3] }]),
    httpRate: new Chart('chart-http-rate', 'HTTP requests / s', [{ label: 'all routes' }]),
    httpLatency: new Chart('chart-http-latency', 'HTTP latency, all routes (ms)', [
      { label: 'p50' }, { label: 'p99' }]),
  };
  window.addEventListener('resize', () => Object.values(charts).forEach((c) => c.resize()));

  // -------------------------------------------------------------- views

  function cell(row, text, cls) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  function fillTable(id, rows, render) {
    const body = document.querySelector('#' + id + ' tbody');
    body.replaceChildren();
    rows.forEach((r, i) => {
      const tr = document.createElement('tr');
      render(tr, r, i);
      body.appendChild(tr);
    });
  }

  function setTiles(model, families) {
    const tiles = [
      ['model', model ? 'v' + model.model_version : '–'],
      ['age', model ? format(model.age_seconds) + ' s' : '–'],
      ['ranker', model ? model.ranker + ' / ' + model.intervention + ' / ' + model.trainer : '–'],
      ['events applied', format(value(families, 'cfrec_events_applied_total'))],
      ['users', model ? format(model.users) : '–'],
      ['items', model ? format(model.items) : '–'],
      ['pool', model ? format(model.candidate_pool) : '–'],
      ['lists judged', model ? format(model.online_quality.lists_judged) : '–'],
    ];
    const el = document.getElementById('tiles');
    el.replaceChildren();
    for (const [name, text] of tiles) {
      const div = document.createElement('div');
      div.className = 'tile';
      const b = document.createElement('b');
      b.textContent = text;
      const span = document.createElement('span');
      span.textContent = name;
      div.append(b, span);
      el.appendChild(div);
    }
  }

  function setStatus(text, bad) {
    const el = document.getElementById('status');
    el.textContent = text;
    el.classList.toggle('bad', !!bad);
  }

  async function getJson(url) {
    const response = await fetch(url, { cache: 'no-store' });
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) {
      const message = body && body.error ? body.error.message : response.statusText;
      const error = new Error(message || 'HTTP ' + response.status);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  // ------------------------------------------------------------ polling

  let prev = null;  // the previous read: {t, families}
  let recent = [];  // the reads of the last TABLE_WINDOW_S seconds
  let polls = 0;

  // Per route, over the last TABLE_WINDOW_S seconds: a route asked every
  // few seconds still gets a rate and quantiles.
  function updateRoutes(t, cur) {
    const base = recent.length ? recent[0] : null;
    const dt = base ? t - base.t : 0;
    const old = base && base.families;
    const routes = labelValues(cur, 'cfrec_http_requests_total', 'route');
    fillTable('routes', routes, (tr, route) => {
      const want = { route: route };
      cell(tr, route);
      cell(tr, format(rate(old, cur, dt, 'cfrec_http_requests_total', want)), 'num');
      const p50 = quantile(old, cur, 'cfrec_http_request_duration_seconds', want, 0.5);
      const p99 = quantile(old, cur, 'cfrec_http_request_duration_seconds', want, 0.99);
      cell(tr, p50 === null ? '–' : format(p50 * 1000), 'num');
      cell(tr, p99 === null ? '–' : format(p99 * 1000), 'num');
      cell(tr, format(value(cur, 'cfrec_http_requests_total', want)), 'num');
    });
  }

  function updateCharts(t, cur, model, dt) {
    const p = prev && prev.families;
    const r = (name, want) => rate(p, cur, dt, name, want);
    const v = (name, want) => value(cur, name, want);
    charts.events.push(t, [r('cfrec_events_applied_total')]);
    charts.lag.push(t, [v('cfrec_consumer_lag_messages')]);
    charts.dead.push(t, [v('cfrec_dead_letters_total'), v('cfrec_clicks_pending')]);
    charts.model.push(t, [v('cfrec_model_version'), v('cfrec_model_age_seconds')]);
    charts.losses.push(t, [v('cfrec_ranker_loss'), v('cfrec_sem_r_loss'), v('cfrec_sem_s_loss')]);
    charts.samples.push(t, [
      r('cfrec_training_samples_total', { source: 'observed' }),
      r('cfrec_training_samples_total', { source: 'counterfactual' }),
      r('cfrec_trainer_events_replayed_total')]);
    charts.policy.push(t, [v('cfrec_counterfactual_mix_ratio'), v('cfrec_policy_reward'),
      v('cfrec_policy_baseline')]);
    const judged = model && model.online_quality.lists_judged > 0;
    charts.auc.push(t, judged ? [v('cfrec_online_auc', { scorer: 'model' }),
      v('cfrec_online_auc', { scorer: 'ctr_decayed_6h' })] : [null, null]);
    charts.ndcg.push(t, judged ? [v('cfrec_online_ndcg10', { scorer: 'model' }),
      v('cfrec_online_ndcg10', { scorer: 'ctr_decayed_6h' })] : [null, null]);
    charts.httpRate.push(t, [r('cfrec_http_requests_total')]);
    const ms = (q) => {
      const x = quantile(p, cur, 'cfrec_http_request_duration_seconds', {}, q);
      return x === null ? null : x * 1000;
    };
    charts.httpLatency.push(t, [p ? ms(0.5) : null, p ? ms(0.99) : null]);
  }

  async function updateSlowViews() {
    try {
      const trending = await getJson('/v1/trending?n=10');
      fillTable('trending', trending.items, (tr, item, i) => {
        cell(tr, String(i + 1), 'num');
        cell(tr, item.item_id);
        cell(tr, item.clicks_6h === undefined ? '–' : format(item.clicks_6h), 'num');
        cell(tr, item.shows_6h === undefined ? '–' : format(item.shows_6h), 'num');
        cell(tr, item.clicks_total === undefined ? '–' : format(item.clicks_total), 'num');
      });
    } catch (e) {
      fillTable('trending', [e.message], (tr, m) => { cell(tr, m).colSpan = 5; });
    }
    try {
      const dead = await getJson('/v1/dead-letters?n=10');
      const rows = dead.dead_letters.length ? dead.dead_letters : [null];
      fillTable('dead-letters', rows, (tr, d) => {
        if (d === null) {
          cell(tr, 'none so far').colSpan = 3;
          return;
        }
        cell(tr, String(d.seq), 'num');
        cell(tr, d.reason);
        cell(tr, d.payload_head + (d.payload_bytes > d.payload_head.length ? ' …' : ''), 'bytes');
      });
    } catch (e) {
      fillTable('dead-letters', [e.message], (tr, m) => { cell(tr, m).colSpan = 3; });
    }
  }

  async function poll() {
    try {
      const [metrics, model] = await Promise.all([
        getJson('/v1/metrics'),
        getJson('/v1/model').catch((e) => (e.status === 503 ? null : Promise.reject(e))),
      ]);
      const cur = indexFamilies(metrics);
      const t = metrics.unix_ms / 1000;
      const dt = prev ? t - prev.t : 0;
      updateCharts(t, cur, model, dt);
      updateRoutes(t, cur);
      setTiles(model, cur);
      prev = { t: t, families: cur };
      recent.push(prev);
      recent = recent.filter((r) => r.t >= t - TABLE_WINDOW_S);
      setStatus(model ? 'live, updated ' + new Date().toLocaleTimeString()
                      : 'waiting for the first model snapshot');
      if (polls++ % SLOW_POLL_EVERY === 0) await updateSlowViews();
    } catch (e) {
      setStatus('cannot reach the service: ' + e.message, true);
    }
    setTimeout(poll, POLL_MS);
  }

  // ---------------------------------------------------------- user view

  function renderTerms(td, stream) {
    td.className = 'terms';
    if (!stream) {
      td.textContent = 'ranker only (stream features off)';
      return;
    }
    const parts = [['item part', stream.item_part], ['user part', stream.user_part]]
      .concat(stream.terms.slice(0, 5).map((t) => [t.feature, t.contribution]));
    for (const [name, c] of parts) {
      const span = document.createElement('span');
      span.className = c >= 0 ? 'pos' : 'neg';
      span.textContent = name + ' ' + (c >= 0 ? '+' : '') + format(c);
      td.appendChild(span);
    }
    if (stream.terms.length > 5) {
      const more = document.createElement('span');
      more.textContent = '… ' + (stream.terms.length - 5) + ' more terms';
      td.appendChild(more);
    }
  }

  async function showUser(userId) {
    const error = document.getElementById('user-error');
    const view = document.getElementById('user-view');
    error.hidden = true;
    if (userId === '') {
      view.hidden = true;
      error.textContent = 'Enter a user id.';
      error.hidden = false;
      return;
    }
    try {
      const doc = await getJson('/v1/explain?n=10&clicks=10&user_id=' + encodeURIComponent(userId));
      document.getElementById('user-summary').textContent =
        'User ' + doc.user_id + ': ' + doc.clicked_items + ' clicked items known to model v' +
        doc.model_version + ' (' + doc.ranker + (doc.stream_features ? ' with stream features' : '') + ').';
      const clicks = doc.recent_clicks.length ? doc.recent_clicks : [null];
      fillTable('user-clicks', clicks, (tr, c) => {
        if (c === null) {
          cell(tr, 'no clicks stored').colSpan = 3;
          return;
        }
        cell(tr, c.item_id);
        cell(tr, c.impression_id);
        cell(tr, c.ts);
      });
      fillTable('user-items', doc.items, (tr, item, i) => {
        cell(tr, String(i + 1), 'num');
        cell(tr, item.item_id);
        cell(tr, format(item.score), 'num');
        cell(tr, format(item.ranker_score), 'num');
        renderTerms(cell(tr, ''), item.stream);
      });
      view.hidden = false;
    } catch (e) {
      view.hidden = true;
      error.textContent = e.message;
      error.hidden = false;
    }
  }

  document.getElementById('user-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const userId = document.getElementById('user-id').value.trim();
    const url = new URL(window.location.href);
    url.searchParams.set('user', userId);
    window.history.replaceState(null, '', url);
    showUser(userId);
  });

  const initialUser = new URL(window.location.href).searchParams.get('user');
  if (initialUser) {
    document.getElementById('user-id').value = initialUser;
    showUser(initialUser);
  }
  poll();
})();
