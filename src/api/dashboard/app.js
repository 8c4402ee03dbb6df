/*
 * app.js - the built-in dashboard of gexecd (GET /dashboard): a read-only
 * client of the HTTP API (docs/api.md), refreshed every few seconds, with a
 * live feed from the event stream.
 *
 * Rules this file keeps (tests/integration/test_dashboard.c checks some):
 *  - Everything from the server (job labels, error messages and tenant
 *    names are user-controlled) reaches the page as text: textContent and
 *    createElement only; no HTML parsing of data, no eval, no inline
 *    handlers or styles (the Content-Security-Policy forbids them anyway).
 *  - API paths are written as the templates of docs/openapi.yaml
 *    ('/v1/jobs/{id}') and filled by url(); the test checks each against
 *    the file.
 *  - The key lives in sessionStorage (this tab) and goes only to this
 *    origin. A 401 stops every keyed request until another key is given
 *    (each refused request is audited and rate-limited by the server); a
 *    403 on one source (metrics: operator; tenant list: admin) is a note in
 *    its panel, the rest goes on.
 */
'use strict';

(() => {
  const REFRESH_MS = 5000;
  const FEED_ROWS = 200;
  const JOB_LIMIT = 50;
  const KEY_ITEM = 'gexec.dashboard.key';
  /* gexecd may be proxied under a prefix: the API is beside the page */
  const BASE = location.pathname.replace(/\/dashboard\/?$/, '');
  const FINAL = new Set(['succeeded', 'failed', 'cancelled', 'timed_out', 'dead']);
  /* the job tabs: each lists the states it covers (GET /v1/jobs?state=),
   * in its order: what waits or runs oldest first (the longest waiting on
   * top), failures newest first (the latest on top) */
  const JOB_TABS = [
    {name: 'queued', states: 'queued,waiting,retrying', order: 'asc', hint: 'not placed yet: queued, waiting on dependencies, or between attempts'},
    {name: 'running', states: 'scheduled,running', order: 'asc', hint: 'placed on a device or running'},
    {name: 'failed', states: 'failed,timed_out', order: 'desc', hint: 'failed or timed out'},
    {name: 'dead', states: 'dead', order: 'desc', hint: 'out of attempts: the dead-letter list (re-queue with gexec requeue ID)'},
  ];

  const $ = (id) => document.getElementById(id);
  const panel = (id) => {
    const s = $(id);
    return {section: s, note: s.querySelector('.note'), body: s.querySelector('tbody')};
  };

  /* ---- DOM helpers: text only ---------------------------------------- */

  /* el('td', {className: 'x', title: 't'}, 'text', node, ...) */
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === 'dataset') Object.assign(e.dataset, v);
      else e[k] = v;
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function row(cells) {
    return el('tr', null, ...cells.map((c) => (c instanceof Node && c.tagName === 'TD' ? c : el('td', null, c))));
  }

  function note(p, text) {
    p.note.textContent = text || '';
    p.note.hidden = !text;
  }

  /* A job id that opens the job's details. */
  function jobButton(id) {
    return el('button', {type: 'button', className: 'link', dataset: {job: id}}, id);
  }

  function stateTag(state) {
    return el('span', {className: 'state s-' + String(state).replace(/[^a-z_]/g, '')}, state);
  }

  /* ---- formatting ------------------------------------------------------ */

  function fmtBytes(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i ? n.toFixed(1) : String(n)) + ' ' + units[i];
  }

  function fmtNum(n, digits) {
    return typeof n === 'number' && isFinite(n) ? n.toFixed(digits) : '–';
  }

  function fmtAge(iso) {
    const t = Date.parse(iso);
    if (!iso || isNaN(t)) return '–';
    const s = Math.max(0, (Date.now() - t) / 1000);
    if (s < 60) return Math.round(s) + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    if (s < 86400) return (s / 3600).toFixed(1) + ' h ago';
    return (s / 86400).toFixed(1) + ' d ago';
  }

  function fmtTime(iso) {
    const t = Date.parse(iso);
    return !iso || isNaN(t) ? '–' : new Date(t).toLocaleString();
  }

  function fmtLabels(labels) {
    return Object.entries(labels || {}).map(([k, v]) => k + '=' + v).join(' ');
  }

  /* "usage / limit" of a quota ({limit, usage}; limit 0 is none). */
  function fmtQuota(q, fmt) {
    if (!q) return '–';
    const f = fmt || String;
    return q.limit ? f(q.usage) + ' / ' + f(q.limit) : f(q.usage);
  }

  /* ---- the key ------------------------------------------------------- */

  const auth = {
    key: '',
    refused: false, /* a 401 came: keyed requests wait for another key */
    keyless: false, /* a keyed route answered without a key: auth is off */
    who: null, /* GET /v1/whoami for the key in use */
  };
  try {
    auth.key = sessionStorage.getItem(KEY_ITEM) || '';
  } catch (e) {
    /* storage disabled: the key lives as long as the page */
  }

  function keyNote() {
    let text = '';
    if (auth.refused) text = auth.key ? 'The key was refused (401): enter a valid key.' : 'This server needs an API key.';
    else if (auth.keyless) text = 'No key needed: authentication is off on this server.';
    else if (auth.key && auth.who)
      text = 'Key ' + auth.who.key_id + ': tenant ' + auth.who.tenant + ', role ' + auth.who.role +
        ' (kept in this tab only).';
    else if (auth.key) text = 'Key in use (kept in this tab only).';
    $('key-note').textContent = text;
    $('key-note').classList.toggle('bad', auth.refused);
    $('key-form').classList.toggle('wanted', auth.refused);
  }

  function setKey(k) {
    auth.key = k;
    auth.refused = false;
    auth.keyless = false;
    auth.who = null;
    try {
      if (k) sessionStorage.setItem(KEY_ITEM, k);
      else sessionStorage.removeItem(KEY_ITEM);
    } catch (e) {
      /* kept in memory only */
    }
    keyNote();
    stream.restart();
    refreshSoon(0);
  }

  function refusedKey() {
    if (auth.refused) return;
    auth.refused = true;
    keyNote();
    stream.stop('needs an API key');
    $('key').focus();
  }

  /* ---- the API ------------------------------------------------------- */

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /* A template of docs/openapi.yaml with its {names} filled from vars
   * (the events of job 7 for {id: 7}), and a query. */
  function url(template, vars, query) {
    const path = template.replace(/\{(\w+)\}/g, (m, name) => encodeURIComponent(String(vars[name])));
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
    const qs = q.toString();
    return BASE + path + (qs ? '?' + qs : '');
  }

  function headers(extra) {
    const h = Object.assign({}, extra);
    if (auth.key) h.Authorization = 'Bearer ' + auth.key;
    return h;
  }

  async function errorOf(res) {
    let code = '', message = res.status + ' ' + res.statusText;
    try {
      const j = await res.json();
      if (j && j.error) {
        code = String(j.error.code || '');
        message = String(j.error.message || message);
      }
    } catch (e) {
      /* not JSON: the status says it */
    }
    return new ApiError(res.status, code, message);
  }

  /* GET a route; JSON (or text with as: 'text'). ok: statuses that carry
   * the answer besides 2xx (/readyz's 503); public: sent without the key;
   * probe: an answer without a key means authentication is off. */
  async function get(template, vars, query, opts) {
    const o = opts || {};
    if (auth.refused && !o.public) throw new ApiError(401, 'GX_EAUTH', 'waiting for an API key');
    const res = await fetch(url(template, vars, query), {
      headers: o.public ? {} : headers(),
      cache: 'no-store',
      credentials: 'omit',
      signal: AbortSignal.timeout(15000),
    });
    if (res.status === 401 && !o.public) {
      refusedKey();
      throw await errorOf(res);
    }
    if (!res.ok && !(o.ok || []).includes(res.status)) throw await errorOf(res);
    if (o.probe && !auth.key && !auth.keyless) {
      auth.keyless = true;
      keyNote();
    }
    return o.as === 'text' ? res.text() : res.json();
  }

  /* What a panel says when its source failed. */
  function failure(e) {
    if (e instanceof ApiError && e.status === 401) return 'Needs an API key.';
    if (e instanceof ApiError && e.status === 403) return 'This key may not read it (' + e.message + ').';
    if (e && e.name === 'TimeoutError') return 'The server did not answer in time.';
    return 'Cannot read it: ' + (e && e.message ? e.message : String(e));
  }

  /* ---- who the key is ----------------------------------------------------- */

  /* Once per key: its tenant and role, for the key's note. */
  async function loadWho() {
    if (auth.who || auth.refused) return;
    try {
      auth.who = await get('/v1/whoami', {}, null, {probe: true});
    } catch (e) {
      return; /* the panels say what failed */
    }
    if (auth.who && auth.who.auth === false) auth.keyless = true;
    keyNote();
  }

  /* ---- readiness --------------------------------------------------------- */

  async function loadReady() {
    const badge = $('ready');
    try {
      const r = await get('/readyz', null, null, {public: true, ok: [503]});
      badge.textContent = r.ready ? 'ready' : 'not ready';
      badge.className = 'badge ' + (r.ready ? 'good' : 'bad');
      $('ready-msg').textContent = r.message || '';
    } catch (e) {
      badge.textContent = 'unreachable';
      badge.className = 'badge bad';
      $('ready-msg').textContent = e && e.message ? e.message : '';
    }
  }

  /* ---- devices --------------------------------------------------------- */

  const HEALTH_CLASS = {ok: 'good', drained: 'warn', recovering: 'warn', unhealthy: 'bad', lost: 'bad'};

  async function loadDevices() {
    const p = panel('devices');
    try {
      const r = await get('/v1/devices', null, null, {probe: true});
      note(p, '');
      $('gpu').textContent = r.gpu ? (r.gpu.available ? 'GPU backend in use. ' : '') + (r.gpu.message || '') : '';
      p.body.replaceChildren(...(r.devices || []).map((d) => {
        const health = el('td', {className: HEALTH_CLASS[d.health] || 'warn', title: d.status || ''}, d.health || '?');
        if (d.status && d.status !== 'ok') health.append(el('div', {className: 'muted small'}, d.status));
        const mem = el('td', null, fmtBytes(d.memory_used) + ' / ' + fmtBytes(d.memory_total));
        if (d.memory_total > 0) mem.append(el('meter', {min: 0, max: d.memory_total, value: d.memory_used}));
        const c = d.circuit || {};
        const circuit = el('td', {className: c.state === 'closed' ? '' : 'bad'}, c.state || '–');
        if (c.failures) circuit.append(' (' + c.failures + ' failures)');
        if (c.next_probe_at) circuit.append(el('div', {className: 'muted small'}, 'probe ' + fmtTime(c.next_probe_at)));
        return row([d.name, d.kind, d.model, health, d.running, d.queued, d.slots, mem, circuit, d.jobs_done]);
      }));
    } catch (e) {
      note(p, failure(e));
    }
  }

  /* ---- metrics: throughput and queues ------------------------------------ */

  /* The Prometheus text format into {name: [{labels, value}]}. */
  function parseMetrics(text) {
    const out = new Map();
    for (const line of text.split('\n')) {
      if (!line || line[0] === '#') continue;
      let i = 0;
      while (i < line.length && line[i] !== '{' && line[i] !== ' ') i++;
      const name = line.slice(0, i);
      const labels = {};
      if (line[i] === '{') {
        i++;
        while (i < line.length && line[i] !== '}') {
          const eq = line.indexOf('=', i);
          if (eq < 0 || line[eq + 1] !== '"') break;
          const key = line.slice(i, eq).replace(/^[\s,]+/, '');
          let v = '';
          let j = eq + 2;
          for (; j < line.length && line[j] !== '"'; j++) {
            if (line[j] === '\\' && j + 1 < line.length) {
              j++;
              v += line[j] === 'n' ? '\n' : line[j];
            } else {
              v += line[j];
            }
          }
          labels[key] = v;
          i = j + 1;
          while (line[i] === ',' || line[i] === ' ') i++;
        }
        i++;
      }
      const fields = line.slice(i).trim().split(/\s+/);
      const raw = fields[0];
      const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
      if (!name) continue;
      if (!out.has(name)) out.set(name, []);
      out.get(name).push({labels, value});
    }
    return out;
  }

  function sum(series, pred) {
    let s = 0;
    for (const x of series || []) if (!pred || pred(x.labels)) s += x.value;
    return s;
  }

  /* The last sample, for rates: {t (ms), submitted, finished: {state: n}}. */
  let lastSample = null;
  const metricTenants = new Set();

  async function loadMetrics() {
    const p = panel('throughput');
    try {
      const text = await get('/metrics', null, null, {as: 'text'});
      note(p, '');
      const m = parseMetrics(text);
      const finished = {};
      for (const x of m.get('gexec_jobs_finished_total') || [])
        finished[x.labels.state] = (finished[x.labels.state] || 0) + x.value;
      const sample = {t: performance.now(), submitted: sum(m.get('gexec_jobs_submitted_total')), finished};
      const prev = lastSample;
      lastSample = sample;
      if (prev) {
        const dt = (sample.t - prev.t) / 1000;
        const rate = (now, before) => (now >= before && dt > 0 ? (now - before) / dt : NaN); /* a restart resets */
        const parts = ['submitted ' + fmtNum(rate(sample.submitted, prev.submitted), 1) + '/s'];
        const done = Object.keys(finished).sort().map((s) => s + ' ' + fmtNum(rate(finished[s], prev.finished[s] || 0), 1) + '/s');
        const all = (o) => Object.values(o).reduce((a, b) => a + b, 0);
        const total = rate(all(finished), all(prev.finished));
        parts.push('finished ' + fmtNum(total, 1) + '/s' + (done.length ? ' (' + done.join(', ') + ')' : ''));
        $('rates').textContent = parts.join(' · ') + ' over the last ' + fmtNum(dt, 1) + ' s';
      }
      const tenants = new Map();
      const at = (t) => {
        if (!tenants.has(t)) tenants.set(t, {depth: 0, running: 0});
        return tenants.get(t);
      };
      for (const x of m.get('gexec_queue_depth') || []) at(x.labels.tenant).depth += x.value;
      for (const x of m.get('gexec_tenant_jobs_running') || []) at(x.labels.tenant).running += x.value;
      for (const t of tenants.keys()) metricTenants.add(t);
      const names = [...tenants.keys()].sort();
      p.body.replaceChildren(...names.map((t) => row([t, tenants.get(t).depth, tenants.get(t).running])));
      if (!names.length) p.body.replaceChildren(row(['no tenant has jobs queued or running', '', '']));
    } catch (e) {
      lastSample = null;
      $('rates').textContent = '';
      p.body.replaceChildren();
      note(p, failure(e) + (e.status === 403 ? ' Throughput and queue depths come from /metrics: an operator key reads them.' : ''));
    }
  }

  /* ---- tenants ------------------------------------------------------------ */

  /* Tenant names seen in job listings (a key of one tenant sees its own). */
  const seenTenants = new Set();

  function tenantRow(name, weight, quotas) {
    const q = quotas || {};
    return row([
      name,
      weight === undefined ? '–' : fmtNum(weight, 2),
      fmtQuota(q.max_queued),
      fmtQuota(q.max_running),
      fmtQuota(q.max_device_memory_bytes, fmtBytes),
      fmtQuota(q.device_seconds_per_hour, (v) => fmtNum(v, 1)),
    ]);
  }

  async function loadTenants() {
    const p = panel('tenants');
    try {
      const r = await get('/v1/tenants'); /* admin */
      note(p, '');
      const list = (r.tenants || []).slice().sort((a, b) => (a.name < b.name ? -1 : 1));
      for (const t of list) seenTenants.add(t.name);
      p.body.replaceChildren(...list.map((t) => tenantRow(t.name, t.weight, t.quotas)));
      return;
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 403)) {
        note(p, failure(e));
        return;
      }
    }
    /* not an admin: the usage of each tenant this key may read (a 404
     * is another tenant's, for a key of one tenant) */
    const own = auth.who && !auth.keyless ? [auth.who.tenant] : []; /* the key's own, even without jobs */
    const known = [...new Set([...own, ...seenTenants, ...metricTenants])].sort();
    const names = known.slice(0, 50); /* a request each, every refresh */
    const rows = [];
    try {
      for (const name of names) {
        const u = await get('/v1/tenants/{t}/usage', {t: name}, null, {ok: [404]});
        if (u.quotas) rows.push(tenantRow(u.tenant, undefined, u.quotas));
      }
    } catch (e) {
      note(p, failure(e));
      return;
    }
    note(p, 'Listing every tenant needs an admin key; shown: the usage of the tenants this key may read' +
      (!names.length ? ' (none known yet).' : known.length > names.length ?
        ` (the first ${names.length} of ${known.length} by name).` : '.'));
    p.body.replaceChildren(...rows);
  }

  /* ---- jobs --------------------------------------------------------------- */

  let jobTab = JOB_TABS[0].name;
  const jobPages = {}; /* tab -> {jobs, more} or {error} */

  function tenantChoices() {
    const sel = $('job-tenant');
    const have = new Set([...sel.options].map((o) => o.value));
    for (const t of [...new Set([...seenTenants, ...metricTenants])].sort())
      if (!have.has(t)) sel.append(el('option', {value: t}, t));
  }

  function renderTabs() {
    const box = $('job-tabs');
    box.replaceChildren(...JOB_TABS.map((t) => {
      const pg = jobPages[t.name];
      const count = !pg ? '…' : pg.error ? '!' : pg.jobs.length + (pg.more ? '+' : '');
      return el('button', {type: 'button', className: 'tab' + (t.name === jobTab ? ' on' : ''), title: t.hint,
        dataset: {tab: t.name}}, t.name + ' ', el('span', {className: 'count'}, count));
    }));
    for (const b of box.children) b.setAttribute('aria-pressed', String(b.dataset.tab === jobTab));
  }

  function renderJobs() {
    const p = panel('jobs');
    const tab = JOB_TABS.find((t) => t.name === jobTab);
    const pg = jobPages[jobTab];
    $('job-hint').textContent = tab.hint + ' (' + (tab.order === 'desc' ? 'newest' : 'oldest') + ' first, at most ' + JOB_LIMIT + ').';
    renderTabs();
    if (!pg) return;
    note(p, pg.error ? failure(pg.error) : '');
    const jobs = pg.jobs || [];
    p.body.replaceChildren(...jobs.map((j) => {
      const why = j.error ? j.error.code + ': ' + j.error.message : j.wait ? j.wait.message : j.fallback || '';
      return row([jobButton(j.id), j.tenant, j.kernel, stateTag(j.state), j.priority,
        j.attempts + ' / ' + j.max_attempts, j.device || '–', el('td', {title: fmtTime(j.submitted_at)}, fmtAge(j.submitted_at)),
        el('td', {className: j.error ? 'bad' : ''}, why), fmtLabels(j.labels)]);
    }));
    if (!jobs.length && !pg.error) p.body.replaceChildren(row([el('td', {colSpan: 10, className: 'muted'}, 'none')]));
    $('job-more').hidden = !pg.more;
    $('job-more').textContent = 'More ' + tab.name + ' jobs than shown: page through them with ' +
      'gexec list --state ' + tab.states + (tab.order === 'desc' ? ' --order desc' : '') +
      ' (GET /v1/jobs?state=' + tab.states + (tab.order === 'desc' ? '&order=desc' : '') + '&cursor=…).';
  }

  async function loadJobs() {
    const tenant = $('job-tenant').value;
    await Promise.all(JOB_TABS.map(async (t) => {
      try {
        const r = await get('/v1/jobs', null, {state: t.states, order: t.order, limit: JOB_LIMIT, tenant});
        for (const j of r.jobs || []) seenTenants.add(j.tenant);
        jobPages[t.name] = {jobs: r.jobs || [], more: r.next_cursor !== null && r.next_cursor !== undefined};
      } catch (e) {
        jobPages[t.name] = {error: e};
      }
    }));
    tenantChoices();
    renderJobs();
  }

  /* ---- one job -------------------------------------------------------------- */

  let openJob = null;
  let openJobDone = false; /* it is final: no need to read it each refresh */

  function field(dl, name, value) {
    dl.append(el('dt', null, name), el('dd', null, value === null || value === undefined || value === '' ? '–' : value));
  }

  async function loadJob() {
    if (!openJob) return;
    const id = openJob;
    const p = panel('job');
    try {
      const [j, h] = await Promise.all([get('/v1/jobs/{id}', {id}), get('/v1/jobs/{id}/events', {id})]);
      if (openJob !== id) return;
      openJobDone = FINAL.has(j.state);
      note(p, '');
      const dl = $('job-fields');
      dl.replaceChildren();
      field(dl, 'state', stateTag(j.state));
      field(dl, 'tenant', j.tenant);
      field(dl, 'kernel', j.kernel);
      field(dl, 'priority', j.priority);
      field(dl, 'attempts', j.attempts + ' of ' + j.max_attempts);
      field(dl, 'device', j.device);
      field(dl, 'submitted', fmtTime(j.submitted_at));
      field(dl, 'started', fmtTime(j.started_at));
      field(dl, 'finished', fmtTime(j.finished_at));
      field(dl, 'queued for', fmtNum(j.queue_seconds, 3) + ' s');
      field(dl, 'ran for', fmtNum(j.run_seconds, 3) + ' s');
      if (j.wait) field(dl, 'waiting: ' + j.wait.reason, j.wait.message);
      if (j.error) field(dl, 'error', j.error.code + ': ' + j.error.message);
      if (j.fallback) field(dl, 'fallback', j.fallback);
      field(dl, 'labels', fmtLabels(j.labels));
      p.body.replaceChildren(...(h.events || []).map((ev) => {
        const what = ev.error ? ev.error.code + ' (' + (ev.error.class || '?') + '): ' + ev.error.message : ev.note || '';
        return row([ev.seq, fmtTime(ev.time), stateTag(ev.state), ev.attempt, el('td', {className: ev.error ? 'bad' : ''}, what)]);
      }));
    } catch (e) {
      if (openJob === id) note(p, failure(e));
    }
  }

  function showJob(id) {
    openJob = id;
    openJobDone = false;
    $('job-id').textContent = id;
    $('job-fields').replaceChildren();
    panel('job').body.replaceChildren();
    note(panel('job'), '');
    $('job').hidden = false;
    $('job').scrollIntoView({block: 'nearest'});
    loadJob();
  }

  /* ---- the live feed (GET /v1/events) ------------------------------------------
   * EventSource cannot send Authorization, so the stream is read with
   * fetch() and its lines parsed here. The last event id (bare "id:" lines
   * included, as the SSE rules say) is sent back as Last-Event-ID when the
   * stream reconnects, so that nothing in between is missed; when the
   * server cannot resume from it, it sends a "reset" event and the page
   * reads everything again. */

  const stream = {
    ctl: null,      /* AbortController of the open stream */
    lastId: '',     /* last event id seen */
    retry: 0,       /* reconnects since the last good one */
    timer: 0,
    pending: [],    /* rows not drawn yet (drawn at most 4 times a second) */
    drawTimer: 0,
    count: 0,       /* events in the last rate window */
    since: performance.now(),

    status(text, bad) {
      $('feed-status').textContent = text;
      $('feed-status').className = bad ? 'bad' : 'muted';
    },

    stop(why) {
      clearTimeout(this.timer);
      this.timer = 0;
      if (this.ctl) this.ctl.abort();
      this.ctl = null;
      this.status(why, true);
    },

    /* A new key: another tenant's events, maybe; start over. */
    restart() {
      this.stop('connecting…');
      this.lastId = '';
      this.retry = 0;
      panel('feed').body.replaceChildren();
      this.open();
    },

    later(why) {
      const delay = Math.min(30000, 1000 * 2 ** this.retry) * (0.75 + Math.random() / 2);
      this.retry = Math.min(this.retry + 1, 5);
      this.status(why + '; reconnecting in ' + Math.round(delay / 1000) + ' s', true);
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.open(), delay);
    },

    async open() {
      if (this.ctl || auth.refused) return;
      const ctl = new AbortController();
      this.ctl = ctl;
      this.timer = 0;
      this.status('connecting…');
      try {
        const extra = {Accept: 'text/event-stream'};
        if (this.lastId) extra['Last-Event-ID'] = this.lastId;
        const res = await fetch(url('/v1/events'), {headers: headers(extra), cache: 'no-store', credentials: 'omit', signal: ctl.signal});
        if (res.status === 401) {
          this.ctl = null;
          refusedKey();
          return;
        }
        if (!res.ok) throw await errorOf(res);
        this.retry = 0;
        this.status('live');
        await this.read(res.body);
        if (!ctl.signal.aborted) this.later('the stream ended (the server stopped, or the key expired)');
      } catch (e) {
        if (ctl.signal.aborted) return;
        if (e instanceof ApiError && e.status === 403) {
          this.status(failure(e), true);
          return;
        }
        this.later('disconnected: ' + (e && e.message ? e.message : String(e)));
      } finally {
        if (this.ctl === ctl) this.ctl = null;
      }
    },

    /* Server-sent events: lines of "field: value", an event at each blank
     * line; ":" starts a comment (the keep-alive). */
    async read(body) {
      const reader = body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      let data = [];
      let type = '';
      let id = this.lastId;
      for (;;) {
        const {value, done} = await reader.read();
        if (done) return;
        buf += value;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, '');
          buf = buf.slice(nl + 1);
          if (line === '') {
            this.lastId = id; /* bare id lines count too */
            if (data.length) this.dispatch(type || 'message', data.join('\n'));
            data = [];
            type = '';
            continue;
          }
          if (line[0] === ':') continue;
          const c = line.indexOf(':');
          const name = c < 0 ? line : line.slice(0, c);
          let v = c < 0 ? '' : line.slice(c + 1);
          if (v[0] === ' ') v = v.slice(1);
          if (name === 'data') data.push(v);
          else if (name === 'event') type = v;
          else if (name === 'id' && !v.includes('\0')) id = v;
        }
      }
    },

    dispatch(type, data) {
      let ev;
      try {
        ev = JSON.parse(data);
      } catch (e) {
        return;
      }
      if (type === 'job') {
        this.count++;
        this.pending.push(ev);
        if (this.pending.length > FEED_ROWS) this.pending.splice(0, this.pending.length - FEED_ROWS);
        if (!this.drawTimer) this.drawTimer = setTimeout(() => this.draw(), 250);
        if (openJob && ev.id === openJob) loadJob();
      } else if (type === 'reset') {
        /* changes may have been missed: read everything again */
        this.pending.push({reset: ev});
        if (!this.drawTimer) this.drawTimer = setTimeout(() => this.draw(), 0);
        refreshSoon(0);
      }
    },

    draw() {
      this.drawTimer = 0;
      const body = panel('feed').body;
      const rows = this.pending.splice(0).reverse().map((ev) => {
        if (ev.reset) {
          return row([el('td', {colSpan: 7, className: 'warn'}, 'stream reset (' + ev.reset.reason + '): ' +
            ev.reset.message)]);
        }
        const t = Date.parse(ev.time);
        return row([isNaN(t) ? '–' : new Date(t).toLocaleTimeString(), jobButton(ev.id), ev.kernel, stateTag(ev.state),
          ev.attempt, ev.device || '–', el('td', {className: ev.error ? 'bad' : ''}, ev.error || '')]);
      });
      body.prepend(...rows);
      while (body.rows.length > FEED_ROWS) body.deleteRow(-1);
      const now = performance.now();
      if (now - this.since >= 5000) {
        if (this.ctl) this.status('live, ' + fmtNum((this.count * 1000) / (now - this.since), 1) + ' events/s');
        this.count = 0;
        this.since = now;
      }
    },
  };

  /* ---- the refresh loop ----------------------------------------------------------- */

  let refreshTimer = 0;
  let refreshing = false;

  async function refresh() {
    clearTimeout(refreshTimer);
    refreshTimer = 0;
    if (refreshing) return;
    refreshing = true;
    try {
      if (document.visibilityState !== 'hidden') {
        /* devices first: a 401 there stops the rest (every refused
         * request is audited by the server) */
        await Promise.all([loadReady(), loadDevices()]);
        await loadWho();
        if (!auth.refused) {
          await Promise.all([loadMetrics(), loadJobs(), openJobDone ? null : loadJob()]);
          await loadTenants(); /* after the others: they name the tenants */
        }
        $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
      }
    } finally {
      refreshing = false;
      refreshSoon(REFRESH_MS);
    }
  }

  function refreshSoon(ms) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, ms);
  }

  /* ---- wiring -------------------------------------------------------------------- */

  function onJobClick(e) {
    const b = e.target.closest('button[data-job]');
    if (b) showJob(b.dataset.job);
  }

  function start() {
    $('key-form').addEventListener('submit', (e) => {
      e.preventDefault(); /* the key never goes into a URL */
      const k = $('key').value.trim();
      $('key').value = '';
      setKey(k);
    });
    $('forget').addEventListener('click', () => {
      $('key').value = '';
      setKey('');
    });
    $('job-tabs').addEventListener('click', (e) => {
      const b = e.target.closest('button[data-tab]');
      if (!b) return;
      jobTab = b.dataset.tab;
      renderJobs();
    });
    $('job-tenant').addEventListener('change', () => {
      for (const t of JOB_TABS) delete jobPages[t.name];
      renderJobs();
      refreshSoon(0);
    });
    $('job-close').addEventListener('click', () => {
      openJob = null;
      $('job').hidden = true;
    });
    for (const id of ['jobs', 'feed', 'job']) $(id).addEventListener('click', onJobClick);
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') refreshSoon(0);
    });
    keyNote();
    renderJobs();
    refresh().then(() => stream.open()); /* once the key is known to work */
  }

  start();
})();
