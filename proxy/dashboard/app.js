// The sessionproxy dashboard: polls the admin API every 2 seconds and
// renders the pool at a glance, the outcomes chart, the sessions table, the
// request log (with its filters) and the CA box. No libraries; everything untrusted (session ids, upstream
// hosts) goes into the page as text, never as markup.
'use strict';

(function () {
  const POLL_MS = 2000;
  const FETCH_TIMEOUT_MS = 5000;
  const MAX_ROWS = 200;
  const TOKEN_KEY = 'sessionproxy.adminToken';
  const OUTCOME_LABELS = {
    good: 'good', bad: 'bad', retire: 'retire', none: 'none',
    error: 'error', rejected: 'rejected', canceled: 'canceled', tunnel: 'tunnel',
  };

  const $ = (id) => document.getElementById(id);

  // ---- the admin token ------------------------------------------------------

  // A token comes from the URL's fragment (#token=…, never sent to the
  // server nor in a Referer) or from the form, and is kept in this tab's
  // sessionStorage only.
  function storage() {
    try { return window.sessionStorage; } catch (e) { return null; }
  }
  function tokenFromFragment() {
    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (!m) return;
    let tok = m[1];
    try { tok = decodeURIComponent(tok); } catch (e) { /* keep it raw */ }
    setToken(tok);
    history.replaceState(null, '', location.pathname + location.search);
  }
  let memToken = '';
  function getToken() {
    const st = storage();
    return (st && st.getItem(TOKEN_KEY)) || memToken;
  }
  function setToken(tok) {
    memToken = tok;
    const st = storage();
    if (st) {
      if (tok) st.setItem(TOKEN_KEY, tok); else st.removeItem(TOKEN_KEY);
    }
    $('token-button').hidden = !tok;
  }
  function authHeaders() {
    const tok = getToken();
    return tok ? { Authorization: 'Bearer ' + tok } : {};
  }

  class AuthError extends Error {}

  async function get(path, asText) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    let resp;
    try {
      resp = await fetch(path, { headers: authHeaders(), cache: 'no-store', signal: ctl.signal });
    } catch (e) {
      throw new Error(ctl.signal.aborted ? path + ': timed out' : path + ': ' + e.message);
    } finally {
      clearTimeout(timer);
    }
    if (resp.status === 401) throw new AuthError('the admin API wants a bearer token');
    if (!resp.ok) {
      let msg = resp.status + ' ' + resp.statusText;
      try { const j = await resp.json(); if (j && j.error) msg = j.error; } catch (e) { /* not JSON */ }
      throw new Error(path + ': ' + msg);
    }
    return asText ? resp.text() : resp.json();
  }

  // ---- formatting -------------------------------------------------------------

  const nf = new Intl.NumberFormat();
  function num(n) { return typeof n === 'number' && isFinite(n) ? nf.format(n) : '–'; }
  function pct(part, whole) {
    if (!whole) return '–';
    const p = 100 * part / whole;
    return (p >= 10 || p === 0 ? p.toFixed(0) : p.toFixed(1)) + ' %';
  }
  function score(x) {
    return typeof x === 'number' ? String(Math.round(x * 100) / 100) : '–';
  }
  function duration(ms) {
    if (!isFinite(ms)) return '–';
    let s = Math.max(0, Math.floor(ms / 1000));
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return d + 'd ' + h + 'h';
    if (h) return h + 'h ' + String(m).padStart(2, '0') + 'm';
    if (m) return m + 'm ' + String(s).padStart(2, '0') + 's';
    return s + 's';
  }
  function clock(t) {
    return new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  // upstreamHost is the host[:port] of a (redacted) upstream URL: never its
  // scheme, user or password.
  function upstreamHost(raw) {
    if (!raw) return 'direct';
    try {
      const u = new URL(raw);
      if (u.host) return u.host;
    } catch (e) { /* fall through */ }
    const m = /^[a-z0-9+.-]+:\/\/(?:[^@/]*@)?([^/?#]+)/i.exec(raw);
    return m ? m[1] : '(unparsable)';
  }

  // ---- rendering --------------------------------------------------------------

  function text(el, s) { if (el.textContent !== s) el.textContent = s; }
  function cell(tr, content, cls) {
    const td = document.createElement('td');
    if (cls) td.className = cls;
    if (content instanceof Node) td.appendChild(content); else td.textContent = content;
    tr.appendChild(td);
    return td;
  }

  // windowTotals sums the history: requests by final outcome (totals, all)
  // and attempts by outcome, retried ones included (attempts, attemptsAll).
  function windowTotals(hist) {
    const totals = {};
    for (const o of hist.outcomes) totals[o] = 0;
    let all = 0;
    const attempts = {};
    let attemptsAll = 0;
    for (const b of hist.buckets) {
      for (const o of hist.outcomes) {
        const n = b.counts[o] || 0;
        totals[o] += n;
        all += n;
      }
      for (const [o, n] of Object.entries(b.attempts || {})) {
        attempts[o] = (attempts[o] || 0) + n;
        attemptsAll += n;
      }
    }
    return { totals, all, attempts, attemptsAll };
  }

  function renderCards(stats, win) {
    text($('usable'), num(stats.usableSessions));
    text($('retired'), num(stats.retiredSessions));
    text($('requests'), num(stats.requests));
    text($('requests-sub'), 'since start · ' + num(win.all) + ' in the last 15 min');
    // Over attempts, not requests: a block that a retry hid still counts.
    const blocked = (win.attempts.bad || 0) + (win.attempts.retire || 0);
    text($('block-rate'), pct(blocked, win.attemptsAll));
    const by = (stats.attempts && stats.attempts.byOutcome) || {};
    let attemptsSinceStart = 0;
    for (const n of Object.values(by)) attemptsSinceStart += n;
    const allBlocked = (by.bad || 0) + (by.retire || 0);
    text($('block-rate-sub'), (win.attemptsAll
      ? num(blocked) + ' bad + retire of ' + num(win.attemptsAll) + ' attempts'
      : 'no attempts in the last 15 min') +
      (attemptsSinceStart ? ' · since start ' + pct(allBlocked, attemptsSinceStart) : '') +
      ' · ' + num(stats.retries || 0) + ' retries since start');
  }

  function renderLegend(hist, win) {
    const ul = $('legend');
    ul.textContent = '';
    for (const o of hist.outcomes) {
      const li = document.createElement('li');
      const sw = document.createElement('span');
      sw.className = 'swatch o-' + o;
      sw.setAttribute('aria-hidden', 'true');
      const label = document.createElement('span');
      label.textContent = OUTCOME_LABELS[o] || o;
      const count = document.createElement('span');
      count.className = 'count';
      count.textContent = num(win.totals[o]);
      li.append(sw, label, count);
      ul.appendChild(li);
    }
  }

  function niceMax(n) {
    if (n <= 5) return 5;
    const p = Math.pow(10, Math.floor(Math.log10(n)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= n) return m * p;
    return 10 * p;
  }

  function renderChart(hist, win) {
    const svg = $('chart');
    const ns = svg.namespaceURI; // the SVG namespace, without spelling it out
    const mk = (name, attrs, parent) => {
      const el = document.createElementNS(ns, name);
      for (const k in attrs) el.setAttribute(k, attrs[k]);
      if (parent) parent.appendChild(el);
      return el;
    };
    const W = 900, H = 240, L = 44, R = 8, T = 10, B = 26;
    const pw = W - L - R, ph = H - T - B;
    const n = hist.buckets.length;
    let top = 0;
    for (const b of hist.buckets) {
      let t = 0;
      for (const o of hist.outcomes) t += b.counts[o] || 0;
      top = Math.max(top, t);
    }
    const ymax = niceMax(top);
    const y = (v) => T + ph - (v / ymax) * ph;

    const desc = $('chart-desc');
    svg.textContent = '';
    svg.appendChild(desc);
    const parts = hist.outcomes.filter((o) => win.totals[o]).map((o) => num(win.totals[o]) + ' ' + o);
    desc.textContent = win.all
      ? num(win.all) + ' requests in the last 15 minutes: ' + parts.join(', ') + '.'
      : 'No requests in the last 15 minutes.';

    for (const v of [0, ymax / 2, ymax]) {
      mk('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }, svg);
      const lab = mk('text', { class: 'axis-label', x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, svg);
      lab.textContent = num(v);
    }
    const step = n ? pw / n : pw;
    const marks = [[0, '−15 min'], [n / 3, '−10 min'], [2 * n / 3, '−5 min'], [n, 'now']];
    for (const [i, label] of marks) {
      const anchor = i === 0 ? 'start' : i === n ? 'end' : 'middle';
      const lab = mk('text', { class: 'axis-label', x: L + i * step, y: H - 8, 'text-anchor': anchor }, svg);
      lab.textContent = label;
    }
    const bw = Math.max(1, step - 1.5);
    hist.buckets.forEach((b, i) => {
      let total = 0;
      for (const o of hist.outcomes) total += b.counts[o] || 0;
      if (!total) return;
      const g = mk('g', { class: 'bar' }, svg);
      const start = Date.parse(b.start);
      const title = mk('title', {}, g);
      title.textContent = clock(start) + '–' + clock(start + hist.intervalSeconds * 1000) + ': ' +
        hist.outcomes.filter((o) => b.counts[o]).map((o) => o + ' ' + num(b.counts[o])).join(', ');
      let acc = 0;
      for (const o of hist.outcomes) {
        const c = b.counts[o] || 0;
        if (!c) continue;
        const y0 = y(acc), y1 = y(acc + c);
        mk('rect', { class: 'o-' + o, x: (L + i * step).toFixed(2), y: y1.toFixed(2), width: bw.toFixed(2), height: Math.max(0.5, y0 - y1).toFixed(2) }, g);
        acc += c;
      }
    });
    if (!win.all) {
      const lab = mk('text', { class: 'empty-label', x: L + pw / 2, y: T + ph / 2, 'text-anchor': 'middle' }, svg);
      lab.textContent = 'No requests in the last 15 minutes';
    }
  }

  // sessionStateOf mirrors the proxy's notion of a usable session, on the
  // server's clock.
  function sessionStateOf(s, now) {
    if (s.retired) return ['retired', 'retired'];
    if (s.errorScore >= s.maxErrorScore) return ['retired', 'blocked'];
    if (s.usageCount >= s.maxUsageCount) return ['retired', 'worn out'];
    if (Date.parse(s.expiresAt) <= now) return ['retired', 'expired'];
    return ['usable', ''];
  }

  function renderSessions(pool, now) {
    const all = (pool && pool.sessions) || [];
    const rows = all.slice().sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt)).slice(0, MAX_ROWS);
    const body = $('sessions-body');
    const frag = document.createDocumentFragment();
    for (const s of rows) {
      const tr = document.createElement('tr');
      const id = cell(tr, s.id, 'id mono');
      id.title = s.id;
      cell(tr, s.site || 'all', 'mono');
      cell(tr, upstreamHost(s.proxyUrl), 'mono');
      cell(tr, s.fingerprint || '', 'mono');
      const es = cell(tr, score(s.errorScore) + ' / ' + score(s.maxErrorScore), 'num');
      if (s.errorScore > 0) es.classList.add('warn');
      cell(tr, num(s.usageCount) + ' / ' + num(s.maxUsageCount), 'num');
      cell(tr, duration(now - Date.parse(s.createdAt)), 'num');
      cell(tr, num((s.cookies || []).length), 'num');
      const [state, why] = sessionStateOf(s, now);
      const badge = document.createElement('span');
      badge.className = 'state ' + state;
      badge.textContent = why && why !== state ? state + ' · ' + why : state;
      cell(tr, badge);
      frag.appendChild(tr);
    }
    if (!rows.length) {
      const tr = document.createElement('tr');
      const td = cell(tr, 'No sessions yet: they are created as requests come in.', 'empty');
      td.colSpan = 9;
      frag.appendChild(tr);
    }
    body.replaceChildren(frag);
    const more = all.length - rows.length;
    text($('sessions-more'), all.length
      ? 'Showing ' + num(rows.length) + ' of ' + num(all.length) + ' sessions, newest first' +
        (more > 0 ? '; ' + num(more) + ' more not shown.' : '.')
      : '');
  }

  // requestsQuery is the request log's query for the filter form's values.
  function requestsQuery() {
    const q = new URLSearchParams();
    for (const name of ['session', 'host', 'status', 'rule']) {
      const v = $('filter-' + name).value.trim();
      if (v) q.set(name, v);
    }
    return q;
  }

  function renderRequests(log) {
    const rows = (log && log.requests) || [];
    const frag = document.createDocumentFragment();
    for (const r of rows) {
      const tr = document.createElement('tr');
      cell(tr, clock(Date.parse(r.time)), 'mono');
      const req = cell(tr, r.method + ' ' + r.host + r.path, 'mono id');
      req.title = r.url;
      cell(tr, r.status ? String(r.status) : '–', 'num');
      cell(tr, r.session || '–', 'mono id');
      const badge = document.createElement('span');
      badge.className = 'state o-' + r.outcome;
      badge.textContent = OUTCOME_LABELS[r.outcome] || r.outcome;
      cell(tr, badge);
      cell(tr, r.rule || '–', 'mono');
      cell(tr, (r.attempts || []).map((a) => (a.status || 'no response') + ' ' + (a.outcome || '…') +
        (a.rule ? ' (' + a.rule + ')' : '') + ' · ' + a.session).join('; ') || '–', 'mono');
      const ms = r.durationNs / 1e6;
      cell(tr, ms < 1000 ? num(Math.round(ms)) + ' ms' : duration(ms), 'num');
      frag.appendChild(tr);
    }
    if (!rows.length) {
      const tr = document.createElement('tr');
      const td = cell(tr, requestsQuery().toString() ? 'No request matches the filters.' : 'No requests yet.', 'empty');
      td.colSpan = 8;
      frag.appendChild(tr);
    }
    $('request-log-body').replaceChildren(frag);
    text($('requests-more'), rows.length ? 'The last ' + num(rows.length) + ' requests, newest first.' : '');
    const q = requestsQuery().toString();
    $('requests-har').setAttribute('href', 'requests.har' + (q ? '?' + q : ''));
  }

  function renderCA(spki) {
    const hash = spki.trim();
    text($('spki'), hash);
    text($('chromium-flag'), '--ignore-certificate-errors-spki-list=' + hash);
  }

  // ---- status and the token form ---------------------------------------------

  function setStatus(msg, cls) {
    const el = $('status');
    text(el, msg);
    el.className = 'status ' + (cls || '');
  }

  function askToken(msg) {
    const form = $('token-form');
    form.hidden = false;
    setStatus(msg, 'error');
    $('token-input').focus();
  }

  // ---- the poll loop -------------------------------------------------------------

  let timer = 0;
  let waitingForToken = false;

  async function poll() {
    clearTimeout(timer);
    timer = 0;
    try {
      const rq = requestsQuery();
      rq.set('limit', String(MAX_ROWS));
      const [stats, pool, hist, spki, log] = await Promise.all([
        get('stats'), get('sessions'), get('stats/history'), get('ca.spki', true), get('requests?' + rq),
      ]);
      const now = Date.parse(hist.now) || Date.now();
      const win = windowTotals(hist);
      renderCards(stats, win);
      renderLegend(hist, win);
      renderChart(hist, win);
      renderSessions(pool, now);
      renderRequests(log);
      renderCA(spki);
      setStatus('Live · every 2 s', 'ok');
      text($('updated'), 'Updated ' + clock(now));
      $('token-form').hidden = true;
    } catch (e) {
      if (e instanceof AuthError) {
        waitingForToken = true;
        askToken(getToken() ? 'The admin token was refused: enter it again.' : 'The admin API wants a bearer token.');
        return; // no polling until a token is given
      }
      setStatus('Cannot reach the admin API: ' + e.message, 'error');
    }
    schedule();
  }

  function schedule() {
    if (!document.hidden && !waitingForToken) timer = setTimeout(poll, POLL_MS);
  }

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) { clearTimeout(timer); timer = 0; } else if (!timer && !waitingForToken) poll();
  });

  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const tok = $('token-input').value.trim();
    if (!tok) return;
    setToken(tok);
    $('token-input').value = '';
    waitingForToken = false;
    setStatus('Loading…', '');
    poll();
  });

  $('token-button').addEventListener('click', () => {
    setToken('');
    location.reload();
  });

  // Downloads are navigations, which cannot carry the bearer token: with a
  // token, fetch the certificate and save it from a blob instead.
  for (const id of ['ca-pem', 'ca-der', 'requests-har']) {
    $(id).addEventListener('click', async (ev) => {
      if (!getToken()) return;
      ev.preventDefault();
      const a = ev.currentTarget;
      try {
        const resp = await fetch(a.getAttribute('href'), { headers: authHeaders(), cache: 'no-store' });
        if (!resp.ok) throw new Error(resp.status + ' ' + resp.statusText);
        const url = URL.createObjectURL(await resp.blob());
        const tmp = document.createElement('a');
        tmp.href = url;
        tmp.download = a.getAttribute('download');
        document.body.appendChild(tmp);
        tmp.click();
        tmp.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
      } catch (e) {
        setStatus('Download failed: ' + e.message, 'error');
      }
    });
  }

  // A filter applies as it is typed.
  $('requests-filter').addEventListener('input', () => { if (!waitingForToken) poll(); });
  $('requests-filter').addEventListener('submit', (ev) => ev.preventDefault());

  $('copy-flag').addEventListener('click', async () => {
    const flag = $('chromium-flag').textContent;
    const btn = $('copy-flag');
    try {
      await navigator.clipboard.writeText(flag);
      btn.textContent = 'Copied';
    } catch (e) {
      const range = document.createRange();
      range.selectNodeContents($('chromium-flag'));
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      btn.textContent = 'Selected: press Ctrl+C';
    }
    setTimeout(() => { btn.textContent = 'Copy'; }, 2000);
  });

  tokenFromFragment();
  setToken(getToken());
  poll();
})();
