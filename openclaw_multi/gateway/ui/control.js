// The gateway Control UI: one page speaking this gateway's own WebSocket protocol (v4) from
// the browser, on the same origin and port as the page. The token (or password) lives in
// this tab's sessionStorage only: never in a cookie, localStorage, or a URL a server sees (a
// `#token=` fragment is read once, stored, and removed from the address bar).
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const STORE = 'openclaw.controlUi.auth';
  const SCOPES = ['operator.admin', 'operator.read', 'operator.write', 'operator.approvals',
    'operator.pairing'];
  const AUTH_FAILURES = new Set(['AUTH_TOKEN_MISMATCH', 'AUTH_PASSWORD_MISMATCH',
    'DEVICE_IDENTITY_REQUIRED', 'AUTH_TOKEN_MISSING', 'AUTH_PASSWORD_MISSING', 'AUTH_UNAUTHORIZED']);
  const MAX_EVENTS = 60;
  const MAX_CHAT = 500;          // chat lines kept on the page, and runs tracked
  const CHAT_SESSION = 'main';

  let ws = null;
  let seq = 0;
  const pending = new Map();     // request id -> {resolve, reject}
  let hello = null;
  let methods = new Set();
  let retryMs = 1000;
  let retryTimer = null;
  let wanted = false;            // keep reconnecting while true
  let chatKey = null;            // the canonical session key chat.history answered with
  const chatRuns = new Map();    // runId -> <li> of the assistant's reply (oldest first)
  // sessionStorage throws when the browser disables storage: this tab then keeps its values
  // in memory (gone on reload, as a login form is).
  const memoryStore = new Map();
  const instanceId = sessionValue('openclaw.controlUi.instance') || randomId();
  storeValue('openclaw.controlUi.instance', instanceId);

  function sessionValue(key) {
    if (memoryStore.has(key)) return memoryStore.get(key);
    try { return sessionStorage.getItem(key); } catch (err) { return null; }
  }
  function storeValue(key, value) {
    try { sessionStorage.setItem(key, value); memoryStore.delete(key); } catch (err) { memoryStore.set(key, value); }
  }
  function dropValue(key) {
    memoryStore.delete(key);
    try { sessionStorage.removeItem(key); } catch (err) { /* storage disabled: nothing kept there */ }
  }
  // ids need no secure context: getRandomValues works on plain http LAN addresses too.
  function randomId() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }
  function savedAuth() {
    try { return JSON.parse(sessionValue(STORE) || 'null'); } catch (err) { return null; }
  }
  function setConn(text, tone) {
    const el = $('conn-state');
    el.textContent = text;
    el.className = 'pill ' + (tone || '');
  }
  function text(id, value) {
    $(id).textContent = value === null || value === undefined || value === '' ? '–' : String(value);
  }
  function duration(ms) {
    if (ms === null || ms === undefined) return '–';
    let s = Math.floor(ms / 1000);
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm' + String(s % 60).padStart(2, '0') + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h' + String(Math.floor(s % 3600 / 60)).padStart(2, '0') + 'm';
    s = Math.floor(s / 3600);
    return Math.floor(s / 24) + 'd' + String(s % 24).padStart(2, '0') + 'h';
  }
  const clock = (ms) => new Date(ms || Date.now()).toLocaleTimeString();

  // -- the WebSocket link ----------------------------------------------------------------------
  function connect(auth) {
    wanted = true;
    if (retryTimer) { clearTimeout(retryTimer); retryTimer = null; }
    if (ws) { ws.onclose = null; ws.close(); }
    setConn('connecting…', 'warn');
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/';
    const sock = new WebSocket(url);
    ws = sock;
    let authFailed = false;
    sock.onmessage = (msg) => {
      let frame;
      try { frame = JSON.parse(msg.data); } catch (err) { return; }
      if (frame.type === 'event' && frame.event === 'connect.challenge') {
        sendConnect(sock, auth).then(onHello, (err) => {
          authFailed = AUTH_FAILURES.has(err.details && err.details.code) ||
            err.code === 'NOT_PAIRED' || /unauthorized/.test(err.message || '');
          if (authFailed) {
            // A refused credential is not kept for the next reload to retry (and be throttled
            // on); pairing still pending is no verdict on the token itself.
            if (err.code !== 'NOT_PAIRED') dropValue(STORE);
            showLogin(auth ? 'The gateway refused that credential.' : '');
          }
          else setConn('refused: ' + err.message, 'bad');
        });
      } else if (frame.type === 'res') {
        const waiter = pending.get(frame.id);
        if (!waiter) return;
        pending.delete(frame.id);
        if (frame.ok) waiter.resolve(frame.payload);
        else waiter.reject(Object.assign(new Error(frame.error.message), frame.error));
      } else if (frame.type === 'event') {
        onEvent(frame.event, frame.payload);
      }
    };
    sock.onclose = () => {
      if (ws !== sock) return;
      ws = null;
      hello = null;
      chatKey = null;            // events are ignored again until the next chat.history
      for (const waiter of pending.values()) waiter.reject(new Error('disconnected'));
      pending.clear();
      $('chat-send').disabled = true;
      if (!wanted || authFailed) return;
      setConn('reconnecting…', 'warn');
      retryTimer = setTimeout(() => connect(savedAuth()), retryMs);
      retryMs = Math.min(retryMs * 2, 10000);
    };
  }

  function request(method, params, sock) {
    const target = sock || ws;
    if (!target || target.readyState !== WebSocket.OPEN) return Promise.reject(new Error('not connected'));
    seq += 1;
    const id = seq + ':' + randomId();
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      target.send(JSON.stringify({ type: 'req', id, method, params }));
    });
  }

  function sendConnect(sock, auth) {
    const creds = {};
    if (auth && auth.kind === 'password') creds.password = auth.secret;
    else if (auth && auth.secret) creds.token = auth.secret;
    return request('connect', {
      minProtocol: 4,
      maxProtocol: 4,
      client: { id: 'openclaw-control-ui', version: 'control-ui', platform: 'web', mode: 'webchat',
        instanceId, displayName: 'Control UI' },
      role: 'operator',
      scopes: SCOPES,
      caps: [],
      auth: creds,
      locale: navigator.language,
      userAgent: navigator.userAgent,
    }, sock);
  }

  async function onHello(payload) {
    hello = payload;
    retryMs = 1000;
    methods = new Set((payload.features && payload.features.methods) || []);
    const auth = savedAuth();
    $('disconnect').hidden = !auth;
    $('login').hidden = true;
    $('app').hidden = false;
    setConn('connected', 'ok');
    const snap = payload.snapshot || {};
    text('id-state-dir', snap.stateDir);
    text('id-config', snap.configPath);
    text('id-auth', snap.authMode);
    text('id-version', payload.server && payload.server.version);
    text('id-host', payload.server && payload.server.host);
    text('id-conn', payload.server && payload.server.connId);
    renderPresence(snap.presence || []);
    if (snap.health) renderHealth(snap.health);
    const every = payload.policy && payload.policy.tickIntervalMs;
    if (every && $('h-tick').textContent === '–') {
      $('h-tick').textContent = 'none yet (every ' + Math.round(every / 1000) + ' s)';
    }
    $('chat-send').disabled = !methods.has('chat.send');
    $('chat-note').textContent = methods.has('chat.send') ? '' : 'This gateway has no chat yet.';
    try {
      const status = await request('status', {});
      text('id-profile', status.profile);
      text('title-profile', '· ' + status.profile);
      document.title = 'OpenClaw gateway · ' + status.profile;
      text('id-port', status.port);
      text('id-version', 'openclaw-multi ' + status.version);
      text('h-rss', status.memory ? (status.memory.rssBytes / 1048576).toFixed(1) + ' MiB' : null);
    } catch (err) { /* a gateway without status still shows the rest */ }
    refreshNodes();
    loadChat();
  }

  // -- events ----------------------------------------------------------------------------------
  function onEvent(name, payload) {
    if (name === 'tick') { text('h-tick', clock(payload && payload.ts)); return; }
    logEvent(name, payload);
    if (name === 'health') renderHealth(payload);
    else if (name === 'presence') renderPresence((payload && payload.presence) || []);
    else if (name === 'chat') onChat(payload);
    else if (name.startsWith('node.pair.') || name.startsWith('device.pair.') || name === 'node.presence') refreshNodes();
    else if (name === 'shutdown') setConn('gateway shutting down', 'warn');
  }

  function logEvent(name, payload) {
    const list = $('events');
    const li = document.createElement('li');
    const time = document.createElement('time');
    time.textContent = clock();
    const ev = document.createElement('span');
    ev.className = 'ev';
    ev.textContent = name;
    const body = document.createElement('span');
    let summary = '';
    try { summary = JSON.stringify(payload); } catch (err) { summary = String(payload); }
    body.textContent = summary && summary.length > 200 ? summary.slice(0, 200) + '…' : (summary || '');
    li.append(time, ev, body);
    list.prepend(li);
    while (list.children.length > MAX_EVENTS) list.lastChild.remove();
  }

  function renderHealth(h) {
    if (!h) return;
    const el = $('h-status');
    el.textContent = h.status || (h.ok ? 'ok' : 'degraded');
    el.className = 'pill ' + (h.ok ? 'ok' : 'warn');
    text('h-uptime', duration(h.uptimeMs));
    if (h.profile && $('id-profile').textContent === '–') text('id-profile', h.profile);
    if (h.port && $('id-port').textContent === '–') text('id-port', h.port);
  }

  function cellRow(values, labels) {
    const tr = document.createElement('tr');
    values.forEach((v, i) => {
      const td = document.createElement(i === 0 ? 'th' : 'td');
      if (i === 0) td.scope = 'row';
      td.dataset.label = labels[i];
      td.textContent = v === null || v === undefined || v === '' ? '–' : String(v);
      tr.appendChild(td);
    });
    return tr;
  }

  function renderPresence(entries) {
    const body = $('clients');
    const rows = entries.filter((e) => e.mode !== 'gateway' && e.reason !== 'self');
    body.replaceChildren(...rows.map((e) => {
      const who = (e.displayName || e.clientId || e.instanceId) + (e.instanceId === instanceId ? ' (this page)' : '');
      const tr = cellRow([who, e.mode, (e.roles || []).join(', '), e.platform, e.version, e.ip,
        e.ts ? clock(e.ts) : ''], ['Client', 'Mode', 'Role', 'Platform', 'Version', 'Address', 'Since']);
      tr.dataset.client = e.clientId || '';
      tr.dataset.instance = e.instanceId || '';
      return tr;
    }));
    $('clients-count').textContent = '(' + rows.length + ')';
    // Counted from presence, which is pushed on every connect and leave (health is cached).
    const has = (e, role) => (e.roles || []).includes(role);
    text('h-operators', rows.filter((e) => has(e, 'operator')).length);
    text('h-nodes', rows.filter((e) => has(e, 'node')).length);
  }

  // -- nodes and pairing -------------------------------------------------------------------------
  async function refreshNodes() {
    if (!hello) return;
    const asks = [];
    if (methods.has('node.pair.list')) {
      asks.push(request('node.pair.list', {}).then((r) => (r.pending || []).map((p) => ({ kind: 'node', ...p }))).catch(() => []));
    }
    if (methods.has('device.pair.list')) {
      asks.push(request('device.pair.list', {}).then((r) => (r.pending || []).map((p) => ({ kind: 'device', ...p }))).catch(() => []));
    }
    const lists = await Promise.all(asks);
    renderPending(lists.flat());
    if (methods.has('node.list')) {
      try {
        const r = await request('node.list', {});
        renderNodes(r.nodes || []);
      } catch (err) { renderNodes([]); }
    }
  }

  function renderPending(items) {
    const list = $('pending');
    list.replaceChildren(...items.map((p) => {
      const li = document.createElement('li');
      li.dataset.requestId = p.requestId;
      li.dataset.kind = p.kind;
      const name = p.displayName || p.nodeId || p.deviceId || p.requestId;
      const who = document.createElement('span');
      who.className = 'who';
      const strong = document.createElement('strong');
      strong.textContent = name;
      const detail = document.createElement('span');
      detail.className = 'muted';
      const bits = [p.kind === 'node' ? 'node commands' : 'device (' + (p.role || 'operator') + ')',
        p.platform, p.clientId, p.remoteIp];
      if (p.commands && p.commands.length) bits.push(p.commands.join(', '));
      detail.textContent = ' · ' + bits.filter(Boolean).join(' · ');
      who.append(strong, detail);
      const approve = document.createElement('button');
      approve.type = 'button';
      approve.textContent = 'Approve';
      approve.setAttribute('aria-label', 'Approve ' + name);
      approve.addEventListener('click', () => decide(p, 'approve', name, [approve, reject]));
      const reject = document.createElement('button');
      reject.type = 'button';
      reject.textContent = 'Reject';
      reject.setAttribute('aria-label', 'Reject ' + name);
      reject.addEventListener('click', () => decide(p, 'reject', name, [approve, reject]));
      li.append(who, approve, reject);
      return li;
    }));
    $('pending-empty').hidden = items.length > 0;
  }

  async function decide(p, verb, name, buttons) {
    buttons.forEach((b) => { b.disabled = true; });
    const method = (p.kind === 'node' ? 'node.pair.' : 'device.pair.') + verb;
    try {
      await request(method, { requestId: p.requestId });
      $('pairing-note').textContent = name + (verb === 'approve' ? ' approved' : ' rejected');
    } catch (err) {
      $('pairing-note').textContent = 'Could not ' + verb + ' ' + name + ': ' + err.message;
      buttons.forEach((b) => { b.disabled = false; });
    }
    refreshNodes();
  }

  function renderNodes(nodes) {
    $('nodes').replaceChildren(...nodes.map((n) => {
      const tr = cellRow([n.displayName || n.nodeId, n.platform, (n.commands || []).join(', '),
        n.approvalState || (n.paired ? 'paired' : ''), n.connected ? 'yes' : 'no'],
      ['Node', 'Platform', 'Commands', 'Approval', 'Connected']);
      tr.dataset.node = n.nodeId;
      tr.dataset.approval = n.approvalState || '';
      return tr;
    }));
  }

  // -- web chat ------------------------------------------------------------------------------------
  function messageText(message) {
    if (!message) return '';
    if (typeof message === 'string') return message;
    const content = message.content;
    if (typeof content === 'string') return content;
    if (Array.isArray(content)) {
      return content.filter((c) => c && (c.type === 'text' || typeof c.text === 'string'))
        .map((c) => c.text).join('');
    }
    return typeof message.text === 'string' ? message.text : '';
  }

  function appendChat(li) {
    const log = $('chat-log');
    log.appendChild(li);
    while (log.children.length > MAX_CHAT) log.firstChild.remove();
    li.scrollIntoView({ block: 'nearest' });
    return li;
  }

  function bubble(role, body) {
    const li = document.createElement('li');
    li.className = role;
    const who = document.createElement('span');
    who.className = 'visually-hidden';
    who.textContent = role === 'user' ? 'You: ' : 'Agent: ';
    const content = document.createElement('span');
    content.className = 'text';
    content.textContent = body;
    li.append(who, content);
    return appendChat(li);
  }

  // A tool the agent called, as one compact line (its result, raw JSON, is not shown).
  function toolLine(call, failed) {
    const li = document.createElement('li');
    li.className = 'tool' + (failed ? ' error' : '');
    li.dataset.tool = call.name || '';
    li.textContent = 'Tool step: ' + (call.name || 'unnamed tool') + (failed ? ' (failed)' : '');
    return appendChat(li);
  }

  function trackRun(runId, li) {
    chatRuns.delete(runId);
    chatRuns.set(runId, li);
    while (chatRuns.size > MAX_CHAT) chatRuns.delete(chatRuns.keys().next().value);
  }

  async function loadChat() {
    if (!methods.has('chat.history')) return;
    try {
      const r = await request('chat.history', { sessionKey: CHAT_SESSION, limit: 50 });
      chatKey = r.sessionKey;
      $('chat-session').textContent = '(' + r.sessionKey + ')';
      $('chat-log').replaceChildren();
      chatRuns.clear();
      const messages = Array.isArray(r.messages) ? r.messages : [];
      // Tool steps (docs/agent.md): an assistant message with toolCall blocks (maybe no
      // text), then one toolResult message per call. Text is drawn as bubbles, each call as a
      // labelled line; results are not drawn.
      const failed = new Set(messages.filter((m) => m && m.role === 'toolResult' && m.isError)
        .map((m) => m.toolCallId));
      for (const m of messages) {
        if (!m || (m.role !== 'user' && m.role !== 'assistant')) continue;
        const body = messageText(m);
        if (body) bubble(m.role, body);
        else if (m.role === 'assistant' && m.errorMessage) bubble('assistant', m.errorMessage).classList.add('error');
        if (m.role !== 'assistant' || !Array.isArray(m.content)) continue;
        for (const c of m.content) {
          if (c && c.type === 'toolCall') toolLine(c, failed.has(c.id));
        }
      }
    } catch (err) {
      $('chat-note').textContent = 'Could not load the conversation: ' + err.message;
    }
  }

  function onChat(p) {
    if (!p) return;
    // Until chat.history answers, chatKey is unknown: only this page's own sends are drawn.
    if (!chatRuns.has(p.runId) && (!chatKey || p.sessionKey !== chatKey)) return;
    let li = chatRuns.get(p.runId);
    if (!li) {
      li = bubble('assistant', '…');
      trackRun(p.runId, li);
    }
    const body = li.querySelector('.text');
    if (p.state === 'delta') {
      body.textContent = p.deltaText || messageText(p.message) || body.textContent;
    } else if (p.state === 'final' || p.state === 'aborted') {
      body.textContent = messageText(p.message) || body.textContent;
      li.dataset.state = p.state;
      chatRuns.delete(p.runId);
      $('chat-note').textContent = p.state === 'final' ? '' : 'Stopped.';
    } else if (p.state === 'error') {
      li.classList.add('error');
      body.textContent = p.errorMessage || 'The agent failed.';
      li.dataset.state = 'error';
      chatRuns.delete(p.runId);
    }
  }

  $('chat-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const input = $('chat-input');
    const message = input.value.trim();
    if (!message) return;
    const runId = randomId();
    bubble('user', message);
    trackRun(runId, bubble('assistant', '…'));
    input.value = '';
    try {
      await request('chat.send', { sessionKey: CHAT_SESSION, message, idempotencyKey: runId });
      $('chat-note').textContent = '';
    } catch (err) {
      const li = chatRuns.get(runId);
      if (li) { li.classList.add('error'); li.querySelector('.text').textContent = 'Not sent: ' + err.message; }
      chatRuns.delete(runId);
    }
  });
  $('chat-input').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      $('chat-form').requestSubmit();
    }
  });

  // -- login -----------------------------------------------------------------------------------
  function showLogin(message) {
    wanted = false;
    if (ws) { ws.onclose = null; ws.close(); ws = null; }
    hello = null;
    $('app').hidden = true;
    $('login').hidden = false;
    $('disconnect').hidden = true;
    $('login-error').textContent = message || '';
    setConn('not connected', 'bad');
    $('secret').focus();
  }

  $('login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const kind = document.querySelector('input[name=kind]:checked').value;
    const auth = { kind, secret: $('secret').value.trim() };
    storeValue(STORE, JSON.stringify(auth));
    $('secret').value = '';
    $('login-error').textContent = '';
    connect(auth);
  });
  $('disconnect').addEventListener('click', () => {
    dropValue(STORE);
    showLogin('Token forgotten.');
  });

  // A link carrying `#token=...` (the fragment never reaches a server or its logs).
  function tokenFromFragment() {
    const params = new URLSearchParams(location.hash.slice(1));
    const token = params.get('token');
    const password = params.get('password');
    if (!token && !password) return;
    history.replaceState(null, '', location.pathname);
    storeValue(STORE, JSON.stringify(token ? { kind: 'token', secret: token } : { kind: 'password', secret: password }));
  }
  window.addEventListener('hashchange', () => {
    const params = new URLSearchParams(location.hash.slice(1));
    if (params.has('token') || params.has('password')) {
      tokenFromFragment();
      connect(savedAuth());
    }
  });
  tokenFromFragment();
  connect(savedAuth());
})();
