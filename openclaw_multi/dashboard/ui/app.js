// The host dashboard page. It holds no data until it has a session: the secret comes from
// the URL fragment (never sent to a server) or the login form, is traded for a session id,
// and is then wiped from the address bar. The session id lives in this tab's sessionStorage
// (a reload keeps it, a new tab needs the URL again) and goes out as the X-Dashboard-Session
// header on every API call, never as a cookie (browsers send 127.0.0.1 cookies to every
// port, so another local web server would get it). Actions carry the session's CSRF token.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';
  const COLUMNS = ['Profile', 'State', 'Health', 'Latency', 'Port', 'Uptime', 'Restarts',
    'RSS', 'Clients', 'Actions'];
  const STORE = 'openclaw.dashboard.session';
  let sid = null;
  let csrf = null;
  let stream = null;           // AbortController of the open event stream
  const memoryStore = new Map(); // when the browser disables sessionStorage (it throws then)
  const rows = new Map();      // name -> {tr, logs, cells, buttons}
  const busy = new Set();      // profiles with an action in flight
  const openLogs = new Set();  // profiles whose log tail is shown

  function say(text, bad) {
    const el = $('notice');
    el.textContent = text;
    el.classList.toggle('bad', !!bad);
  }

  function storedSession() {
    if (memoryStore.has(STORE)) return memoryStore.get(STORE);
    try { return sessionStorage.getItem(STORE); } catch (err) { return null; }
  }
  function keepSession(value) {
    try { sessionStorage.setItem(STORE, value); } catch (err) { memoryStore.set(STORE, value); }
  }
  function dropSession() {
    memoryStore.delete(STORE);
    try { sessionStorage.removeItem(STORE); } catch (err) { /* storage disabled */ }
  }

  // Every API call: the session header, no cookies sent or kept.
  function api(path, init) {
    const headers = { 'X-Dashboard-Session': sid || '', ...((init && init.headers) || {}) };
    return fetch(path, { cache: 'no-store', credentials: 'omit', ...init, headers });
  }

  async function login(body) {
    const r = await api('/api/login', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    });
    if (!r.ok) {
      $('login-error').textContent = 'That secret is wrong (or the link was already used).';
      return false;
    }
    const granted = await r.json();
    sid = granted.session;
    csrf = granted.csrf;
    keepSession(sid);
    $('login-error').textContent = '';
    return true;
  }

  function showLogin() {
    if (stream) { stream.abort(); stream = null; }
    sid = null;
    csrf = null;
    dropSession();
    for (const name of [...rows.keys()]) dropRow(name);
    $('summary').textContent = '';
    $('board').hidden = true;
    $('logout').hidden = true;
    $('login').hidden = false;
    $('secret').focus();
  }

  function showBoard() {
    $('login').hidden = true;
    $('board').hidden = false;
    $('logout').hidden = false;
    connect();
  }

  // The live stream, read with fetch (EventSource cannot send the session header, and the
  // session id must never be in a URL): server-sent events, one JSON snapshot per `data:`.
  async function connect() {
    if (stream) stream.abort();
    const ctl = new AbortController();
    stream = ctl;
    try {
      const r = await api('/api/events', { signal: ctl.signal });
      if (r.status === 401) { if (stream === ctl) showLogin(); return; }
      if (!r.ok || !r.body) throw new Error('stream answered ' + r.status);
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const data = buffer.slice(0, cut).split('\n').filter((l) => l.startsWith('data: '))
            .map((l) => l.slice(6)).join('\n');
          buffer = buffer.slice(cut + 2);
          if (data) render(JSON.parse(data));
        }
      }
    } catch (err) { /* a dropped stream: decided below */ }
    if (stream !== ctl || ctl.signal.aborted) return;
    // The stream ended: logged out elsewhere (401), or the server went away (try again).
    const r = await api('/api/session').catch(() => null);
    if (stream !== ctl) return;
    if (r && r.status === 401) showLogin();
    else window.setTimeout(() => { if (stream === ctl) connect(); }, 2000);
  }

  // -- formatting ----------------------------------------------------------------------------
  function duration(s) {
    if (s === null || s === undefined) return '–';
    s = Math.floor(s);
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm' + String(s % 60).padStart(2, '0') + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h' + String(Math.floor(s % 3600 / 60)).padStart(2, '0') + 'm';
    return Math.floor(s / 86400) + 'd' + String(Math.floor(s % 86400 / 3600)).padStart(2, '0') + 'h';
  }
  function mib(bytes) {
    if (bytes === null || bytes === undefined) return '–';
    const m = bytes / 1048576;
    return (m >= 10 ? m.toFixed(0) : m.toFixed(1)) + ' MiB';
  }
  function latency(ms) {
    if (ms === null || ms === undefined) return '–';
    return ms < 1 ? '<1 ms' : ms.toFixed(0) + ' ms';
  }
  const cell = (v) => (v === null || v === undefined ? '–' : String(v));

  // One <svg><polyline> per cell, made once; each snapshot only moves its points.
  function sparkline() {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', 'spark');
    svg.setAttribute('width', '80');
    svg.setAttribute('height', '20');
    svg.setAttribute('viewBox', '0 0 80 20');
    svg.setAttribute('aria-hidden', 'true');
    return svg;
  }

  function plot(svg, points, index) {
    const values = (points || []).map((p) => p[index]).filter((v) => v !== null && v !== undefined);
    let line = svg.firstChild;
    if (values.length < 2) {
      if (line) line.remove();
      return;
    }
    if (!line) {
      line = document.createElementNS(SVG, 'polyline');
      svg.appendChild(line);
    }
    const lo = Math.min(...values), hi = Math.max(...values);
    const span = hi - lo || 1;
    const step = 80 / (values.length - 1);
    line.setAttribute('points', values.map((v, i) =>
      (i * step).toFixed(1) + ',' + (18 - ((v - lo) / span) * 16).toFixed(1)).join(' '));
  }

  // A value followed by its sparkline, both kept for updates.
  function metricCell(td) {
    const value = document.createElement('span');
    const svg = sparkline();
    td.append(value, svg);
    return { value, svg };
  }

  // -- rows ----------------------------------------------------------------------------------
  function button(text, label, onClick) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = text;
    b.setAttribute('aria-label', label);
    b.addEventListener('click', onClick);
    return b;
  }

  function makeRow(name) {
    const tr = document.createElement('tr');
    tr.className = 'profile';
    tr.dataset.profile = name;
    const cells = {};
    COLUMNS.forEach((title, i) => {
      const td = document.createElement(i === 0 ? 'th' : 'td');
      if (i === 0) td.scope = 'row';
      td.dataset.label = title;
      cells[title] = td;
      tr.appendChild(td);
    });
    const latency = metricCell(cells.Latency);
    const rss = metricCell(cells.RSS);
    cells.Profile.className = 'name';
    cells.Profile.textContent = name;
    for (const k of ['Port', 'Restarts', 'Clients', 'Uptime']) cells[k].classList.add('num');
    const logsId = 'logs-' + rows.size + '-' + name.replace(/[^a-z0-9_-]/gi, '');
    const buttons = {
      start: button('Start', 'Start ' + name, () => act(name, 'start')),
      stop: button('Stop', 'Stop ' + name, () => act(name, 'stop')),
      restart: button('Restart', 'Restart ' + name, () => act(name, 'restart')),
      logs: button('Logs', 'Show the log of ' + name, () => toggleLogs(name)),
    };
    buttons.logs.setAttribute('aria-expanded', 'false');
    buttons.logs.setAttribute('aria-controls', logsId);
    const box = document.createElement('div');
    box.className = 'actions';
    Object.values(buttons).forEach((b) => box.appendChild(b));
    cells.Actions.appendChild(box);
    const logs = document.createElement('tr');
    logs.className = 'logs';
    logs.id = logsId;
    logs.hidden = true;
    const td = document.createElement('td');
    td.colSpan = COLUMNS.length;
    const pre = document.createElement('pre');
    pre.setAttribute('tabindex', '0');
    pre.setAttribute('aria-label', 'Last lines of the log of ' + name);
    td.appendChild(pre);
    logs.appendChild(td);
    return { tr, logs, pre, cells, buttons, latency, rss };
  }

  function dropRow(name) {
    const r = rows.get(name);
    if (!r) return;
    r.tr.remove();
    r.logs.remove();
    rows.delete(name);
    openLogs.delete(name);
  }

  function pill(td, text, cls) {
    let span = td.firstChild;
    if (!span) {
      span = document.createElement('span');
      td.appendChild(span);
    }
    span.className = 'pill ' + cls;
    span.textContent = text;
  }

  function updateButtons(name, data) {
    const r = rows.get(name);
    if (!r) return;
    const state = data ? data.state : r.tr.dataset.state;
    const inFlight = busy.has(name);
    r.buttons.start.disabled = inFlight || state === 'RUNNING' || state === 'STARTING';
    r.buttons.stop.disabled = inFlight || state === 'STOPPED';
    r.buttons.restart.disabled = inFlight;
  }

  function render(snap) {
    const body = $('rows');
    const seen = new Set();
    let running = 0;
    snap.rows.forEach((data) => {
      seen.add(data.name);
      if (data.state === 'RUNNING') running += 1;
      let r = rows.get(data.name);
      if (!r) {
        r = makeRow(data.name);
        rows.set(data.name, r);
      }
      const c = r.cells;
      r.tr.dataset.state = data.state;
      r.tr.dataset.health = data.health;
      pill(c.State, data.state.toLowerCase(), 's-' + data.state);
      pill(c.Health, data.health, 'h-' + data.health);
      const points = snap.history[data.name];
      r.latency.value.textContent = latency(data.latencyMs);
      plot(r.latency.svg, points, 1);
      c.Port.textContent = cell(data.port);
      c.Uptime.textContent = duration(data.uptimeS);
      c.Restarts.textContent = cell(data.restarts);
      r.rss.value.textContent = mib(data.rssBytes);
      plot(r.rss.svg, points, 2);
      c.Clients.textContent = cell(data.clients);
      c.Profile.title = data.lastError || data.stateDir;
      updateButtons(data.name, data);
    });
    for (const name of [...rows.keys()]) if (!seen.has(name)) dropRow(name);
    // Keep the DOM in name order, moving nodes only when the order changed (a moved node
    // would lose keyboard focus).
    const wanted = snap.rows.flatMap((d) => [rows.get(d.name).tr, rows.get(d.name).logs]);
    const current = [...body.children];
    if (wanted.length !== current.length || wanted.some((n, i) => n !== current[i])) {
      wanted.forEach((n) => body.appendChild(n));
    }
    $('empty').hidden = snap.rows.length > 0;
    const when = new Date(snap.generatedAt).toLocaleTimeString();
    $('summary').textContent = snap.rows.length + ' profiles · ' + running + ' running · supervisor ' +
      (snap.supervisorRunning ? 'running' : 'not running') + ' · updated ' + when;
    openLogs.forEach((name) => loadLogs(name));
  }

  // -- actions and logs ------------------------------------------------------------------------
  async function post(path, payload) {
    const r = await api(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf || '' },
      body: JSON.stringify(payload),
    });
    const body = await r.json().catch(() => ({}));
    return { r, body };
  }

  async function act(name, op) {
    busy.add(name);
    updateButtons(name);
    say({ start: 'Starting ', stop: 'Stopping ', restart: 'Restarting ' }[op] + name + '…');
    try {
      const { r, body } = await post('/api/action', { profile: name, op });
      if (r.status === 401) { showLogin(); return; }
      if (!r.ok) say('Could not ' + op + ' ' + name + ': ' + (body.error || r.status), true);
      else say(name + ': ' + op + ' done (' + String(body.state || '').toLowerCase() + ')');
    } catch (err) {
      say('Could not ' + op + ' ' + name + ': ' + err, true);
    } finally {
      busy.delete(name);
      updateButtons(name);
    }
  }

  async function loadLogs(name) {
    const r = rows.get(name);
    if (!r) return;
    const resp = await api('/api/logs?profile=' + encodeURIComponent(name) + '&lines=40');
    const body = await resp.json().catch(() => ({}));
    if (resp.status === 401) { showLogin(); return; }
    r.pre.textContent = resp.ok ? (body.lines.length ? body.lines.join('\n') : '(the log is empty)')
      : 'cannot read the log: ' + (body.error || resp.status);
  }

  function toggleLogs(name) {
    const r = rows.get(name);
    if (!r) return;
    const show = r.logs.hidden;
    r.logs.hidden = !show;
    r.buttons.logs.setAttribute('aria-expanded', String(show));
    r.buttons.logs.textContent = show ? 'Hide log' : 'Logs';
    if (show) { openLogs.add(name); loadLogs(name); } else openLogs.delete(name);
  }

  // -- start ---------------------------------------------------------------------------------
  $('login-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const input = $('secret');
    if (await login({ secret: input.value.trim() })) {
      input.value = '';
      showBoard();
    } else {
      input.select();
    }
  });
  $('logout').addEventListener('click', async () => {
    await post('/api/logout', {});
    showLogin();
  });

  // A secret (or one-time code) in the fragment: trade it for a session. True if it did.
  async function fromFragment() {
    const params = new URLSearchParams(location.hash.slice(1));
    const secret = params.get('secret');
    const code = params.get('code');
    if (!secret && !code) return null;
    // Out of the address bar (and history) before anything else happens.
    history.replaceState(null, '', location.pathname);
    return login(secret ? { secret } : { code });
  }

  async function boot() {
    const viaFragment = await fromFragment();
    if (viaFragment) { showBoard(); return; }
    // A reload in the same tab: the session id kept in sessionStorage, if still live.
    sid = storedSession();
    const r = sid ? await api('/api/session') : null;
    if (r && r.ok) {
      csrf = (await r.json()).csrf;
      showBoard();
    } else {
      showLogin();
    }
  }
  // A link pasted into a tab already showing the page changes only the fragment.
  window.addEventListener('hashchange', async () => {
    const viaFragment = await fromFragment();
    if (viaFragment) showBoard();
    else if (viaFragment === false) showLogin();
  });
  boot();
})();
