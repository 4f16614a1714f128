// trafficmon's live page: loads /stats/history once, then follows /stats/stream over a
// WebSocket; reconnects with backoff after a restart. No dependency, no build step.
(() => {
  'use strict';

  const HISTORY_LIMIT = 720;
  const TOP_ROWS = 10;
  const TOKEN_KEY = 'trafficmon.token';
  const MAX_RETRY_MS = 30000;
  const $ = (id) => document.getElementById(id);

  const state = {
    windows: [],          // closed windows, oldest first, at most HISTORY_LIMIT
    capture: null,        // /stats/capture
    captureAt: 0,         // when it was fetched (ms, this clock)
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    authRequired: document.documentElement.dataset.auth === 'required',
    generation: 0,        // bumps on every (re)connect; stale callbacks check it
    ws: null,
    retries: 0,
    retryAt: 0,
    retryTimer: null,
    cursorStart: null,    // start (ms) of the window the chart read-out shows; null: the newest
    lastMessageAt: 0,     // when the stream last delivered a window (ms)
  };

  class AuthError extends Error {}
  /** The server could not be reached or answered with an error: retry later. */
  class NetworkError extends Error {}
  const FETCH_TIMEOUT_MS = 10000;

  // ---------- formatting ----------

  /** `value` in the largest unit that keeps it under 1000. `step`, for axis labels, is the
   *  spacing of the labels: enough decimals that neighbours differ. */
  function scaled(value, units, step) {
    let v = Number(value) || 0;
    let s = step;
    let i = 0;
    while (Math.abs(v) >= 999.5 && i < units.length - 1) { v /= 1000; if (s) s /= 1000; i += 1; }
    let digits = i === 0 ? 0 : Math.abs(v) < 9.995 ? 2 : Math.abs(v) < 99.95 ? 1 : 0;
    if (s) {
      digits = 0;
      while (digits < 3 && Math.abs(s * 10 ** digits - Math.round(s * 10 ** digits)) > 1e-6 * 10 ** digits) digits += 1;
    }
    else if (i === 0 && v !== 0 && Math.abs(v) < 10 && !Number.isInteger(v)) digits = 1;
    return v.toFixed(digits) + (units[i] ? ' ' + units[i] : '');
  }
  const fmtBytes = (b) => scaled(b, ['B', 'kB', 'MB', 'GB', 'TB', 'PB']);
  const fmtBits = (bps, step) => scaled(bps, ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s'], step);
  const fmtPps = (pps, step) => scaled(pps, ['pkt/s', 'kpkt/s', 'Mpkt/s', 'Gpkt/s'], step);
  const fmtExact = (n) => Number(n).toLocaleString('en-US');
  const fmtShare = (part, whole) => whole > 0 ? (100 * part / whole).toFixed(part === whole ? 0 : 1) + ' %' : '–';
  const pad = (n) => String(n).padStart(2, '0');
  const fmtClock = (ms, seconds = true) => {
    const d = new Date(ms);
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + (seconds ? ':' + pad(d.getSeconds()) : '');
  };
  const fmtDay = (ms) => {
    const d = new Date(ms);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate());
  };
  function fmtDuration(seconds) {
    let s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s + ' s';
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d > 0) return d + ' d ' + h + ' h';
    if (h > 0) return h + ' h ' + m + ' min';
    return m + ' min ' + s + ' s';
  }
  function fmtWindowLength(seconds) {
    return seconds >= 1 && Number.isInteger(seconds) ? seconds + ' s' : (seconds * 1000).toFixed(0) + ' ms';
  }

  // ---------- windows ----------

  /** A record plus the figures the page derives from it. */
  function derive(w) {
    const start = Date.parse(w.start);
    const end = Date.parse(w.end);
    const seconds = Math.max((end - start) / 1000, 0.001);
    const counts = (c) => ({ packets: Number(c && c.packets) || 0, bytes: Number(c && c.bytes) || 0 });
    const inn = counts(w.in);
    const out = counts(w.out);
    return {
      record: w, start, end, seconds,
      inBytes: inn.bytes, outBytes: out.bytes,
      inBits: inn.bytes * 8 / seconds, outBits: out.bytes * 8 / seconds,
      inPps: inn.packets / seconds, outPps: out.packets / seconds,
      pps: (w.packets || 0) / seconds,
      ipBytes: inn.bytes + out.bytes,
    };
  }

  /** Adds a window, keeping the list sorted and bounded. A window already there is
   *  replaced only when `replace` (a full record over a summary). Only the newest window
   *  keeps its client, server and service lists: the charts need totals. */
  function addWindow(record, replace = true) {
    if (!record || typeof record.start !== 'string' || typeof record.end !== 'string') return;
    const w = derive(record);
    if (!Number.isFinite(w.start) || !Number.isFinite(w.end) || w.end <= w.start) return;
    const list = state.windows;
    const newest = list[list.length - 1];
    let i = list.length;
    while (i > 0 && list[i - 1].start > w.start) i -= 1;
    if (i > 0 && list[i - 1].start === w.start) {
      if (replace) list[i - 1] = w;
    } else {
      list.splice(i, 0, w);
    }
    if (list.length > HISTORY_LIMIT) list.splice(0, list.length - HISTORY_LIMIT);
    if (newest && newest !== list[list.length - 1]) slim(newest);
  }

  function slim(w) {
    const r = w.record;
    if ((r.clients && r.clients.length) || (r.servers && r.servers.length) || (r.services && r.services.length)) {
      w.record = Object.assign({}, r, { clients: [], servers: [], services: [] });
    }
  }

  // ---------- network ----------

  async function api(path) {
    const headers = state.token ? { Authorization: 'Bearer ' + state.token } : {};
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
    try {
      let response;
      try {
        response = await fetch(path, { headers, cache: 'no-store', signal: abort.signal });
      } catch (error) {
        throw new NetworkError(path + ': ' + error.message);
      }
      if (response.status === 401) throw new AuthError('the token was not accepted');
      if (!response.ok) throw new NetworkError(path + ' answered HTTP ' + response.status);
      try {
        return await response.json();
      } catch (error) {
        throw new NetworkError(path + ': ' + error.message);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** What a failed request means for the page: a refused token asks for another; a
   *  failed load retries later (`retry`); anything unexpected is logged, not hidden. */
  function failed(error, generation, retry = true) {
    if (generation !== state.generation) return;
    if (error instanceof AuthError) { needToken('The token was not accepted. Paste another one.'); return; }
    if (!(error instanceof NetworkError)) console.error('trafficmon:', error);
    if (retry) retryLater(generation);
  }

  function base64url(text) {
    const bytes = new TextEncoder().encode(text);
    let binary = '';
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  async function refreshCapture(generation) {
    try {
      const capture = await api('/stats/capture');
      if (generation !== state.generation) return;
      state.capture = capture;
      state.captureAt = Date.now();
      renderHealth();
      renderSource();
    } catch (error) {
      failed(error, generation, false);
    }
  }

  /** (Re)loads everything, then follows the stream. */
  async function connect() {
    const generation = stopAll();
    if (state.authRequired && !state.token) { needToken(); return; }
    setConnection('connecting', 'connecting');
    let history;
    try {
      // Totals for the charts (top=0: no client lists, a few kB a window), and the newest
      // window in full for the tables.
      const [h, newest, capture] = await Promise.all([
        api('/stats/history?top=0&limit=' + HISTORY_LIMIT), api('/stats/history?limit=1'), api('/stats/capture')]);
      history = { windows: (h.windows || []).concat(newest.windows || []) };
      if (generation !== state.generation) return;
      state.capture = capture;
      state.captureAt = Date.now();
    } catch (error) {
      failed(error, generation);
      return;
    }
    state.windows = [];
    state.cursorStart = null;
    for (const w of history.windows || []) addWindow(w);
    render();
    openStream(generation);
  }

  function openStream(generation) {
    const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    // Browsers cannot set Authorization on a WebSocket: the token rides in the
    // subprotocol list, and the server answers with "trafficmon".
    const protocols = state.token ? ['trafficmon', 'bearer.' + base64url(state.token)] : ['trafficmon'];
    let ws;
    try {
      ws = new WebSocket(scheme + location.host + '/stats/stream', protocols);
    } catch (error) {
      retryLater(generation);
      return;
    }
    state.ws = ws;
    ws.onopen = () => {
      if (generation !== state.generation) { ws.close(); return; }
      state.retries = 0;
      state.lastMessageAt = Date.now();
      setConnection('live', 'live');
      // Windows that closed between the history request and now.
      api('/stats/history?top=0&limit=20').then((h) => {
        if (generation !== state.generation) return;
        for (const w of h.windows || []) addWindow(w, false);
        const last = state.windows[state.windows.length - 1];
        // A summary became the newest window: fetch that one in full for the tables.
        if (last && last.ipBytes > 0 && !(last.record.clients || []).length) {
          return api('/stats/history?limit=1').then((full) => {
            if (generation !== state.generation) return;
            for (const w of full.windows || []) addWindow(w);
            render();
          });
        }
        render();
      }).catch((error) => failed(error, generation, false));
    };
    ws.onmessage = (event) => {
      if (generation !== state.generation) return;
      let record;
      try { record = JSON.parse(event.data); } catch (error) { return; }
      state.lastMessageAt = Date.now();
      addWindow(record);
      // A replay can push thousands of windows a second: draw and ask for the capture
      // totals at most a few times a second, not per window.
      scheduleRender();
      scheduleCaptureRefresh(generation);
    };
    ws.onclose = (event) => {
      if (generation !== state.generation) return;
      state.ws = null;
      // Dropped for falling behind (1008): wait longer before loading everything again.
      if (event.code === 1008) state.retries = Math.max(state.retries, 3);
      retryLater(generation);
    };
  }

  /** Ends the current connection and its timers; returns the new generation. */
  function stopAll() {
    const generation = ++state.generation;
    clearTimeout(state.retryTimer);
    clearTimeout(renderTimer);
    renderTimer = null;
    clearTimeout(captureTimer);
    captureTimer = null;
    if (state.ws) {
      const old = state.ws;
      state.ws = null;
      old.onclose = null;
      old.close();
    }
    return generation;
  }

  /** A live capture closes a window every window length, empty or not: a stream silent
   *  for three of them (a laptop that slept, a connection that died without a close)
   *  is reconnected. */
  function watchStream() {
    const c = state.capture;
    if ($('connection').dataset.state !== 'live' || !c || c.status !== 'capturing') return;
    if (Date.now() - state.lastMessageAt > (3 * c.window_seconds + 5) * 1000) connect();
  }

  let renderTimer = null;
  function scheduleRender() {
    if (renderTimer !== null) return;
    renderTimer = setTimeout(() => { renderTimer = null; render(); }, 100);
  }

  let captureTimer = null;
  let captureAskedAt = 0;
  function scheduleCaptureRefresh(generation) {
    if (captureTimer !== null) return;
    const wait = Math.max(0, captureAskedAt + 1000 - Date.now());
    captureTimer = setTimeout(() => {
      captureTimer = null;
      captureAskedAt = Date.now();
      refreshCapture(generation);
    }, wait);
  }

  function retryLater(generation) {
    const delay = Math.min(MAX_RETRY_MS, 1000 * 2 ** state.retries * (1 + Math.random() * 0.2));
    state.retries = Math.min(state.retries + 1, 10);
    state.retryAt = Date.now() + delay;
    setConnection('disconnected', 'disconnected');
    showRetryCountdown();
    state.retryTimer = setTimeout(() => { if (generation === state.generation) connect(); }, delay);
  }

  function showRetryCountdown() {
    if ($('connection').dataset.state !== 'disconnected') return;
    const left = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
    $('countdown').textContent = 'retrying in ' + left + ' s';
  }

  function setConnection(kind, text) {
    const pill = $('connection');
    pill.dataset.state = kind;
    pill.textContent = text;
    $('countdown').textContent = '';
    $('retry').hidden = kind !== 'disconnected' && kind !== 'connecting';
    const banner = $('banner');
    const stale = kind === 'disconnected';
    document.body.classList.toggle('stale', stale && state.windows.length > 0);
    if (stale) {
      const last = state.windows[state.windows.length - 1];
      banner.textContent = 'Disconnected from trafficmon. ' +
        (last ? 'The figures below stop at the window ending ' + fmtClock(last.end) + '. ' : '') +
        'Reconnecting on its own.';
    }
    banner.hidden = !stale;
  }

  // ---------- the token ----------

  function needToken(reason) {
    stopAll();
    state.token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    setConnection('unauthorized', 'token needed');
    if (reason) $('auth-reason').textContent = reason;
    const dialog = $('auth');
    if (!dialog.open) dialog.showModal();
    $('auth-token').focus();
  }

  $('auth-form').addEventListener('submit', () => {
    const token = $('auth-token').value.trim();
    $('auth-token').value = '';
    if (!token) return;
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    connect();
  });
  $('auth').addEventListener('cancel', (event) => event.preventDefault());
  $('retry').addEventListener('click', () => { state.retries = 0; connect(); });

  // ---------- rendering ----------

  function el(tag, attributes, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attributes || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function render() {
    // One panel failing on an odd record must not stop the others or the stream.
    for (const panel of [renderSource, renderWindow, renderCharts, renderParties, renderServices, renderProtocols, renderNetworks, renderHealth]) {
      try { panel(); } catch (error) { console.error('trafficmon: drawing ' + panel.name + ' failed:', error); }
    }
  }

  function renderSource() {
    const c = state.capture;
    if (!c) return;
    $('version').textContent = c.version ? 'v' + c.version : '';
    const kind = c.source ? c.source.kind : 'file';
    const name = c.source ? c.source.name : '';
    const flows = Array.isArray(c.flows) ? c.flows.map((f) => f.source + ' ' + f.listen) : [];
    const collecting = flows.length ? 'collecting flows on ' + flows.join(', ') : '';
    if (kind === 'flows') $('source').textContent = 'C' + collecting.slice(1);
    else if (kind === 'interface') $('source').textContent = 'Capturing on ' + name + (collecting ? '; ' + collecting : '');
    else $('source').textContent = 'Replayed from ' + name;
    document.title = 'trafficmon · ' + name;
  }

  function renderWindow() {
    const last = state.windows[state.windows.length - 1];
    const total = $('window-total');
    if (!last) {
      $('last-window').textContent = 'No window has closed yet.';
      total.textContent = '–';
      total.dataset.bytes = '';
      total.dataset.packets = '';
      for (const id of ['rate-in', 'rate-out', 'pps', 'clients']) $(id).textContent = '–';
      return;
    }
    const r = last.record;
    const day = fmtDay(last.start) === fmtDay(Date.now()) ? '' : fmtDay(last.start) + ' ';
    $('last-window').textContent = day + fmtClock(last.start) + ' – ' + fmtClock(last.end) +
      ' (' + fmtWindowLength(last.seconds) + (r.partial ? ', partial' : '') + ')';
    $('last-window').dataset.start = r.start;
    total.dataset.bytes = String(r.bytes);
    total.dataset.packets = String(r.packets);
    total.textContent = fmtBytes(r.bytes) + ' in ' + fmtExact(r.packets) + (r.packets === 1 ? ' packet' : ' packets');
    total.title = fmtExact(r.bytes) + ' bytes';

    // Rates come from the newest complete window: a partial one (the end of a file, the
    // start or end of a capture) covers less than its length, so its rates read low.
    let rated = last;
    for (let i = state.windows.length - 1; i >= 0; i -= 1) {
      if (!state.windows[i].record.partial) { rated = state.windows[i]; break; }
    }
    const q = rated.record;
    $('rate-in').textContent = fmtBits(rated.inBits);
    $('rate-in-sub').textContent = fmtBytes(rated.inBytes) + ' · ' + fmtPps(rated.inPps);
    $('rate-out').textContent = fmtBits(rated.outBits);
    $('rate-out-sub').textContent = fmtBytes(rated.outBytes) + ' · ' + fmtPps(rated.outPps);
    $('pps').textContent = fmtPps(rated.pps);
    const extra = [];
    if (q.non_ip && q.non_ip.packets) extra.push(fmtExact(q.non_ip.packets) + ' not IP');
    if (q.malformed && q.malformed.packets) extra.push(fmtExact(q.malformed.packets) + ' malformed');
    $('pps-sub').textContent = fmtExact(q.packets) + ' in the window' + (extra.length ? ' · ' + extra.join(', ') : '');
    $('rates-window').textContent = rated === last ? '' :
      'Rates are of the newest complete window, ' + fmtClock(rated.start) + ' – ' + fmtClock(rated.end) + '.';
    const listed = (r.clients || []).length;
    const others = r.other ? r.other.clients || 0 : 0;
    $('clients').textContent = fmtExact(listed + others);
    $('clients-sub').textContent = others ? listed + ' listed, ' + fmtExact(others) + ' in other' : 'all listed';
  }

  function topService(party) {
    const sums = new Map();
    for (const s of party.services || []) sums.set(s.service, (sums.get(s.service) || 0) + s.bytes);
    let best = null;
    for (const [name, bytes] of sums) if (!best || bytes > best[1]) best = [name, bytes];
    return best ? best[0] : '–';
  }

  const partyBytes = (p) => p.in.bytes + p.out.bytes;

  /** Whether the capture names local networks (`--local-net`, a live interface's own
   *  addresses): the page then shows local machines and the remote parties apart. */
  function localNetworks() {
    const c = state.capture;
    return c && Array.isArray(c.local_networks) ? c.local_networks : [];
  }

  /** The local parties of a record: its local clients and local servers, one row per
   *  address (a machine that is a client in some packets and a server in others adds up
   *  both; a packet has one client and one server, so nothing is counted twice), by bytes. */
  function localMachines(record) {
    const byIP = new Map();
    for (const [list, role] of [[record.clients || [], 'client'], [record.servers || [], 'server']]) {
      for (const p of list) {
        if (p.local !== true) continue;
        const m = byIP.get(p.ip) || { ip: p.ip, local: true, in: { packets: 0, bytes: 0 }, out: { packets: 0, bytes: 0 }, services: [], roles: [] };
        m.in.packets += p.in.packets; m.in.bytes += p.in.bytes;
        m.out.packets += p.out.packets; m.out.bytes += p.out.bytes;
        m.services = m.services.concat(p.services || []);
        m.roles.push(role);
        byIP.set(p.ip, m);
      }
    }
    return [...byIP.values()].sort((a, b) => partyBytes(b) - partyBytes(a) || (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
  }

  /** Titles and order of the party panels: with local networks, local machines, remote
   *  servers, remote clients; without, top clients and top servers. */
  let localMode = null;
  function setPartyMode(local, networks) {
    $('local-nets').textContent = networks.length ? 'In ' + networks.join(', ') + ', as clients and as servers.' : '';
    if (local === localMode) return;
    localMode = local;
    $('panel-local').hidden = !local;
    $('h-clients').textContent = local ? 'Remote clients' : 'Top clients';
    $('h-servers').textContent = local ? 'Remote servers' : 'Top servers';
    const parent = $('parties');
    if (local) parent.insertBefore($('panel-servers'), $('panel-clients'));
    else parent.insertBefore($('panel-clients'), $('panel-servers'));
  }

  /** One table of parties: the first TOP_ROWS of `list` (already in order), their share of
   *  the window's IP bytes, and a line on what is not shown. */
  function fillParties(name, list, last, emptyText, notes) {
    const shown = list.slice(0, TOP_ROWS);
    const largest = shown.reduce((max, p) => Math.max(max, partyBytes(p)), 0);
    const rows = shown.map((p) => {
      const bytes = partyBytes(p);
      const tr = el('tr', { 'data-ip': p.ip, 'data-bytes': String(bytes), 'data-local': String(p.local === true) });
      if (p.roles) tr.title = 'as ' + p.roles.join(' and ');
      tr.append(el('td', { class: 'ip' }, p.ip));
      tr.append(el('td', { class: 'num', title: fmtExact(p.in.bytes) + ' bytes' }, fmtBytes(p.in.bytes)));
      tr.append(el('td', { class: 'num', title: fmtExact(p.out.bytes) + ' bytes' }, fmtBytes(p.out.bytes)));
      const share = el('td', { class: 'num' }, fmtShare(bytes, last.ipBytes));
      const bar = el('span', { class: 'share', 'aria-hidden': 'true' });
      bar.style.width = (largest > 0 ? Math.max(1, Math.round(48 * bytes / largest)) : 0) + 'px';
      share.append(bar);
      tr.append(share);
      tr.append(el('td', {}, topService(p)));
      return tr;
    });
    const more = [];
    if (list.length > TOP_ROWS) more.push((list.length - TOP_ROWS) + ' more listed in the record');
    const note = more.concat(notes).join('; ');
    $(name + '-more').textContent = note.charAt(0).toUpperCase() + note.slice(1);
    fillTable($(name + '-table').tBodies[0], rows, emptyText);
  }

  function renderParties() {
    const networks = localNetworks();
    const local = networks.length > 0;
    setPartyMode(local, networks);
    const last = state.windows[state.windows.length - 1];
    if (!last) {
      for (const name of ['local', 'clients', 'servers']) {
        $(name + '-more').textContent = '';
        fillTable($(name + '-table').tBodies[0], [], 'Waiting for the first window.');
      }
      return;
    }
    const r = last.record;
    const clients = r.clients || [];
    const servers = r.servers || [];
    const other = r.other || {};
    const otherServers = r.other_servers || {};
    const foldedBytes = (o) => (o.in ? o.in.bytes : 0) + (o.out ? o.out.bytes : 0);
    // Folded parties are not marked local or remote: in the local view the note says so.
    const either = local ? ', local or remote' : '';
    const clientNote = other.clients ? [fmtExact(other.clients) + ' folded into other (' + fmtBytes(foldedBytes(other)) + either + ')'] : [];
    const serverNote = otherServers.servers ? [fmtExact(otherServers.servers) + ' folded into other (' + fmtBytes(foldedBytes(otherServers)) + either + ')'] : [];
    if (!local) {
      fillParties('clients', clients, last, 'No IP traffic in this window.', clientNote);
      fillParties('servers', servers, last, 'No server listed in this window.', serverNote);
      return;
    }
    const folded = (other.clients || 0) + (otherServers.servers || 0);
    fillParties('local', localMachines(r), last, 'No local machine in this window.',
      folded ? ['any past the record\'s top clients and servers are folded into other'] : []);
    fillParties('servers', servers.filter((p) => p.local !== true), last, 'No remote server in this window.', serverNote);
    fillParties('clients', clients.filter((p) => p.local !== true), last, 'No remote client in this window.', clientNote);
  }

  /** Puts `rows` in a table body, or one row saying why there is none. */
  function fillTable(body, rows, emptyText, columns = 5) {
    if (rows.length === 0) {
      const tr = el('tr');
      tr.append(el('td', { colspan: String(columns), class: 'muted' }, emptyText));
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  function renderServices() {
    const body = $('services-table').tBodies[0];
    const last = state.windows[state.windows.length - 1];
    const sums = new Map();
    if (last) {
      // The window-wide list (every client, folded ones too) when the record has it.
      const lists = Array.isArray(last.record.services) ? [last.record.services] : (last.record.clients || []).map((c) => c.services || []);
      for (const list of lists) {
        for (const s of list) {
          const t = sums.get(s.service) || { in: 0, out: 0, packets: 0 };
          if (s.direction === 'in') t.in += s.bytes; else t.out += s.bytes;
          t.packets += s.packets;
          sums.set(s.service, t);
        }
      }
    }
    const sorted = [...sums.entries()].sort((a, b) => (b[1].in + b[1].out) - (a[1].in + a[1].out)).slice(0, TOP_ROWS);
    const rows = sorted.map(([name, t]) => {
      const tr = el('tr', { 'data-service': name, 'data-bytes': String(t.in + t.out) });
      tr.append(el('td', {}, name));
      for (const text of [fmtBytes(t.in), fmtBytes(t.out), fmtExact(t.packets), fmtShare(t.in + t.out, last.ipBytes)]) {
        tr.append(el('td', { class: 'num' }, text));
      }
      return tr;
    });
    fillTable(body, rows, last ? 'No service in this window.' : 'Waiting for the first window.');
  }

  // TCP control segments by kind, the record's names and what the page calls them.
  const TCP_KINDS = [['syn', 'SYN'], ['synack', 'SYN-ACK'], ['rst', 'RST'], ['fin', 'FIN'], ['unknown', 'cut before flags']];
  const DNS_RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'other'];
  // Response codes that mean the server failed or refused (NXDOMAIN is an answer).
  const DNS_ERRORS = new Set(['FORMERR', 'SERVFAIL', 'NOTIMP', 'REFUSED', 'other']);
  const SIZE_BOUNDS = [64, 128, 256, 512, 1024, 1518, 9216];

  /** The newest window's TCP segments, SYN clients, DNS messages and packet sizes. */
  function renderProtocols() {
    const last = state.windows[state.windows.length - 1];
    const r = last ? last.record : {};
    const tcp = r.tcp || {};
    const dns = r.dns || {};
    const num = (v) => Number(v) || 0;
    const waiting = 'Waiting for the first window.';
    $('protocols-window').textContent = last
      ? 'The last window, ' + fmtClock(last.start) + ' – ' + fmtClock(last.end) + (r.partial ? ' (partial).' : '.')
      : waiting;

    const tcpIn = tcp.in || {};
    const tcpOut = tcp.out || {};
    const tcpRows = last ? TCP_KINDS.map(([key, name]) => {
      const tr = el('tr', { 'data-kind': key, 'data-in': String(num(tcpIn[key])), 'data-out': String(num(tcpOut[key])) });
      tr.append(el('th', { scope: 'row' }, name));
      tr.append(el('td', { class: 'num' }, fmtExact(num(tcpIn[key]))));
      tr.append(el('td', { class: 'num' }, fmtExact(num(tcpOut[key]))));
      return tr;
    }) : [];
    fillTable($('tcp-table').tBodies[0], tcpRows, waiting, 3);
    const syn = num(tcpIn.syn) + num(tcpOut.syn);
    const synack = num(tcpIn.synack) + num(tcpOut.synack);
    $('tcp-ratio').textContent = !last ? '' : syn > 0
      ? 'SYN-ACK / SYN: ' + fmtShare(synack, syn) + ' (' + fmtExact(synack) + ' of ' + fmtExact(syn) + '; a flood or a scan answers few).'
      : 'No SYN in this window.';

    const synRows = (tcp.syn_clients || []).map((c) => {
      const tr = el('tr', { 'data-ip': c.ip, 'data-services': String(num(c.syn_services)), 'data-syn': String(num(c.syn)) });
      tr.append(el('td', { class: 'ip' }, c.ip));
      tr.append(el('td', { class: 'num' }, fmtExact(num(c.syn_services))));
      tr.append(el('td', { class: 'num' }, fmtExact(num(c.syn))));
      return tr;
    });
    fillTable($('syn-table').tBodies[0], synRows, last ? 'No SYN in this window.' : waiting, 3);

    // Responses in code order, queries by count; each with its share of its kind.
    const responses = dns.responses || {};
    const queries = dns.queries || {};
    const responseTotal = DNS_RCODES.reduce((sum, code) => sum + num(responses[code]), 0);
    const responseRows = DNS_RCODES.filter((code) => num(responses[code]) > 0).map((code) => {
      const n = num(responses[code]);
      const tr = el('tr', { 'data-rcode': code, 'data-count': String(n) });
      if (DNS_ERRORS.has(code)) tr.classList.add('bad');
      tr.append(el('th', { scope: 'row' }, code));
      tr.append(el('td', { class: 'num' }, fmtExact(n)));
      tr.append(el('td', { class: 'num' }, fmtShare(n, responseTotal)));
      return tr;
    });
    fillTable($('dns-responses-table').tBodies[0], responseRows, last ? 'No DNS response in this window.' : waiting, 3);
    const queryList = Object.entries(queries).map(([type, n]) => [type, num(n)]).filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const queryTotal = queryList.reduce((sum, [, n]) => sum + n, 0);
    const queryRows = queryList.map(([type, n]) => {
      const tr = el('tr', { 'data-qtype': type, 'data-count': String(n) });
      tr.append(el('th', { scope: 'row' }, type));
      tr.append(el('td', { class: 'num' }, fmtExact(n)));
      tr.append(el('td', { class: 'num' }, fmtShare(n, queryTotal)));
      return tr;
    });
    fillTable($('dns-queries-table').tBodies[0], queryRows, last ? 'No DNS query in this window.' : waiting, 3);
    const unread = [];
    if (num(dns.malformed)) unread.push(fmtExact(num(dns.malformed)) + ' malformed');
    if (num(dns.cut)) unread.push(fmtExact(num(dns.cut)) + ' cut by the capture');
    $('dns-note').textContent = unread.length ? 'Not readable as DNS: ' + unread.join(', ') + '.' : '';

    // Wire lengths per bucket, with a bar for the bucket's share of the busiest one.
    const sizes = r.sizes || {};
    const sizesIn = Array.isArray(sizes.in) ? sizes.in : [];
    const sizesOut = Array.isArray(sizes.out) ? sizes.out : [];
    const both = SIZE_BOUNDS.concat([null]).map((_, i) => num(sizesIn[i]) + num(sizesOut[i]));
    const busiest = Math.max(0, ...both);
    const sizeRows = last ? SIZE_BOUNDS.concat([null]).map((bound, i) => {
      const label = bound === null ? '> ' + SIZE_BOUNDS[i - 1] + ' B'
        : i === 0 ? '≤ ' + bound + ' B' : (SIZE_BOUNDS[i - 1] + 1) + '–' + bound + ' B';
      const tr = el('tr', { 'data-bucket': String(i), 'data-in': String(num(sizesIn[i])), 'data-out': String(num(sizesOut[i])) });
      const name = el('th', { scope: 'row' }, label);
      tr.append(name);
      tr.append(el('td', { class: 'num' }, fmtExact(num(sizesIn[i]))));
      const out = el('td', { class: 'num' }, fmtExact(num(sizesOut[i])));
      const bar = el('span', { class: 'share', 'aria-hidden': 'true' });
      bar.style.width = (busiest > 0 && both[i] > 0 ? Math.max(1, Math.round(48 * both[i] / busiest)) : 0) + 'px';
      out.append(bar);
      tr.append(out);
      return tr;
    }) : [];
    fillTable($('sizes-table').tBodies[0], sizeRows, waiting, 3);
  }

  /** The newest window's traffic per named network (both sides), client country and
   *  client AS, for what the server was started with (--networks, --country-db,
   *  --asn-db); the panel stays hidden without them. */
  function renderNetworks() {
    const last = state.windows[state.windows.length - 1];
    const r = last ? last.record : {};
    const lists = { networks: r.networks, countries: r.countries, asns: r.asns };
    const shown = Object.values(lists).some(Array.isArray);
    $('panel-networks').hidden = !shown;
    if (!shown) return;
    $('networks-window').textContent = 'The last window, ' + fmtClock(last.start) + ' – ' + fmtClock(last.end) + (r.partial ? ' (partial).' : '.');
    const num = (v) => Number(v) || 0;
    const bytes = (c) => num(c && c.bytes);
    /** One row per entry: its name (and a second line), bytes in and out, share of the window. */
    const rows = (list, name, detail, key) => list.map((e) => {
      const inBytes = bytes(e.in), outBytes = bytes(e.out);
      const tr = el('tr', { [key]: name(e), 'data-in': String(inBytes), 'data-out': String(outBytes) });
      const head = el('th', { scope: 'row' }, name(e));
      const more = detail(e);
      if (more) head.append(el('span', { class: 'muted detail' }, more));
      if (name(e) === 'unknown' || name(e) === 'other') tr.classList.add('rest');
      tr.append(head);
      for (const text of [fmtBytes(inBytes), fmtBytes(outBytes), fmtShare(inBytes + outBytes, last.ipBytes)]) {
        tr.append(el('td', { class: 'num' }, text));
      }
      return tr;
    });
    const none = () => '';
    for (const side of ['client', 'server']) {
      const part = $('networks-' + side + '-part');
      part.hidden = !Array.isArray(lists.networks);
      if (part.hidden) continue;
      const entries = lists.networks.filter((n) => n.side === side);
      fillTable($('networks-' + side + '-table').tBodies[0], rows(entries, (n) => String(n.network), none, 'data-network'),
        'No ' + side + ' traffic in this window.', 4);
    }
    $('countries-part').hidden = !Array.isArray(lists.countries);
    if (Array.isArray(lists.countries)) {
      fillTable($('countries-table').tBodies[0], rows(lists.countries, (c) => String(c.country), none, 'data-country'),
        'No client traffic in this window.', 4);
    }
    $('asns-part').hidden = !Array.isArray(lists.asns);
    if (Array.isArray(lists.asns)) {
      fillTable($('asns-table').tBodies[0], rows(lists.asns, (a) => String(a.asn), (a) => a.as_org ? String(a.as_org) : '', 'data-asn'),
        'No client traffic in this window.', 4);
    }
  }

  function renderHealth() {
    const c = state.capture;
    if (!c) return;
    const set = (id, text, bad) => { $(id).textContent = text; $(id).classList.toggle('bad', Boolean(bad)); };
    set('h-status', c.status + (c.error ? ': ' + c.error : ''), c.status === 'failed');
    set('h-received', fmtExact(c.received));
    const dropped = c.dropped.kernel + c.dropped.interface;
    set('h-dropped', fmtExact(dropped) + (dropped ? ' (kernel ' + fmtExact(c.dropped.kernel) + ', interface ' + fmtExact(c.dropped.interface) + ')' : ''), dropped > 0);
    set('h-malformed', fmtExact(c.malformed));
    set('h-nonip', fmtExact(c.non_ip));
    set('h-late', fmtExact(c.late_packets));
    set('h-windows', fmtExact(c.windows_closed));
    set('h-window-length', fmtWindowLength(c.window_seconds));
    tickUptime();
    renderFlows(c);
  }

  /** The flow inputs (--netflow, --sflow) by exporter, from /stats/capture; the panel is
   *  hidden when none runs. */
  function renderFlows(c) {
    const inputs = Array.isArray(c.flows) ? c.flows : [];
    $('panel-flows').hidden = inputs.length === 0;
    if (inputs.length === 0) return;
    const rows = [];
    const notes = [];
    for (const input of inputs) {
      const name = input.source + ' ' + input.listen;
      if (input.receive_errors > 0) notes.push(name + ': ' + fmtExact(input.receive_errors) + ' datagrams lost in the kernel (receive buffer full)');
      if (input.exporters.length === 0) {
        const tr = el('tr', { 'data-input': name });
        tr.append(el('td', {}, name), el('td', { class: 'muted', colspan: '8' }, 'No exporter heard yet.'));
        rows.push(tr);
      }
      for (const e of input.exporters) {
        const errors = Object.values(e.errors || {}).reduce((a, b) => a + b, 0);
        const tr = el('tr', { 'data-input': name, 'data-exporter': e.exporter });
        tr.append(el('td', {}, name), el('td', {}, e.exporter));
        const cells = [
          [fmtExact(e.datagrams), false], [fmtExact(e.records), false], [fmtExact(errors), errors > 0],
          [fmtExact(e.sequence_gaps), e.sequence_gaps > 0], [fmtExact(e.missing_template), false],
          [e.sampling_rate > 1 ? '1 in ' + fmtExact(e.sampling_rate) : 'none', false],
        ];
        for (const [text, bad] of cells) {
          const td = el('td', { class: 'num' + (bad ? ' bad' : '') }, text);
          tr.append(td);
        }
        const ago = e.last_seen_ns > 0 ? fmtClock(e.last_seen_ns / 1e6) : '–';
        tr.append(el('td', {}, ago));
        rows.push(tr);
      }
    }
    $('flows-table').tBodies[0].replaceChildren(...rows);
    $('flows-note').textContent = notes.join('; ');
  }

  function tickUptime() {
    const c = state.capture;
    if (!c) return;
    const live = $('connection').dataset.state === 'live';
    const seconds = c.uptime_seconds + (live ? (Date.now() - state.captureAt) / 1000 : 0);
    $('h-uptime').textContent = fmtDuration(seconds);
  }

  // ---------- charts ----------

  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attributes || {})) node.setAttribute(k, v);
    return node;
  }

  function niceStep(raw) {
    const power = 10 ** Math.floor(Math.log10(raw));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= raw) return m * power;
    return 10 * power;
  }

  const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400].map((s) => s * 1000);

  /** The windows the charts show: those of the newest HISTORY_LIMIT window lengths (a
   *  replay's windows and later injects, years apart, would squash each other). */
  function visibleWindows() {
    const all = state.windows;
    if (all.length === 0) return { windows: all, offset: 0 };
    const newest = all[all.length - 1];
    const from = newest.end - HISTORY_LIMIT * (newest.end - newest.start);
    let offset = all.length - 1;
    while (offset > 0 && all[offset - 1].start >= from) offset -= 1;
    return { windows: all.slice(offset), offset };
  }

  /** The index of the window the read-out shows (the newest unless one was picked). */
  function cursorIndex() {
    const all = state.windows;
    if (state.cursorStart !== null) {
      for (let i = all.length - 1; i >= 0; i -= 1) if (all[i].start === state.cursorStart) return i;
      state.cursorStart = null;
    }
    return all.length - 1;
  }

  function drawChart(container, series, format) {
    const width = Math.max(container.clientWidth, 200);
    const height = Math.max(container.clientHeight, 100);
    const m = { left: 78, right: 12, top: 10, bottom: 24 };
    const plotW = width - m.left - m.right;
    const plotH = height - m.top - m.bottom;
    const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none', 'aria-hidden': 'true' });
    const { windows } = visibleWindows();
    if (windows.length === 0) {
      const t = svg('text', { x: m.left + plotW / 2, y: m.top + plotH / 2, 'text-anchor': 'middle', class: 'empty' });
      t.textContent = 'No closed window yet';
      root.append(t);
      container.replaceChildren(root);
      return;
    }
    const t0 = windows[0].start;
    const t1 = windows[windows.length - 1].end;
    const span = Math.max(t1 - t0, 1);
    const x = (t) => m.left + (t - t0) / span * plotW;
    let max = 0;
    for (const s of series) for (const w of windows) max = Math.max(max, s.value(w));
    const step = max > 0 ? niceStep(max / 4) : 1;
    const top = max > 0 ? Math.ceil(max / step - 1e-9) * step : 4;
    const y = (v) => m.top + plotH - v / top * plotH;

    const grid = svg('g', { class: 'grid' });
    const axis = svg('g', { class: 'axis' });
    for (let k = 0; k * step <= top + step / 2; k += 1) {
      const v = k * step;
      grid.append(svg('line', { x1: m.left, x2: m.left + plotW, y1: y(v), y2: y(v) }));
      const label = svg('text', { x: m.left - 6, y: y(v) + 4, 'text-anchor': 'end' });
      label.textContent = format(v, step);
      axis.append(label);
    }
    const wanted = span / Math.max(2, Math.floor(plotW / 90));
    const tStep = TIME_STEPS.find((s) => s >= wanted) || Math.ceil(wanted / 86400000) * 86400000;
    // Ticks on round local times; the zone offset is taken at each tick (DST changes).
    const zone = (t) => new Date(t).getTimezoneOffset() * 60000;
    for (let k = Math.ceil((t0 - zone(t0)) / tStep); ; k += 1) {
      const local = k * tStep;
      const t = local + zone(local);
      if (t > t1) break;
      if (t < t0) continue;
      const px = x(t);
      axis.append(svg('line', { x1: px, x2: px, y1: m.top + plotH, y2: m.top + plotH + 4 }));
      const anchor = px > width - 32 ? 'end' : 'middle';
      const label = svg('text', { x: px, y: height - 6, 'text-anchor': anchor });
      label.textContent = tStep >= 86400000 ? fmtDay(t).slice(5) : fmtClock(t, tStep < 60000);
      axis.append(label);
    }
    axis.append(svg('line', { x1: m.left, x2: m.left + plotW, y1: m.top + plotH, y2: m.top + plotH }));
    root.append(grid, axis);

    // A window is drawn at its middle; a gap longer than two windows breaks the line.
    for (const s of series) {
      let d = '';
      let area = '';
      let runStart = null;
      let previous = null;
      const closeArea = () => {
        if (runStart !== null && previous !== null) {
          area += `L${x(previous).toFixed(1)},${y(0).toFixed(1)}L${x(runStart).toFixed(1)},${y(0).toFixed(1)}Z`;
        }
      };
      windows.forEach((w, i) => {
        const mid = (w.start + w.end) / 2;
        const px = x(mid).toFixed(1);
        const py = y(s.value(w)).toFixed(1);
        const gap = i > 0 && w.start - windows[i - 1].end > 2 * (w.end - w.start);
        if (i === 0 || gap) {
          closeArea();
          d += `M${px},${py}`;
          area += `M${px},${py}`;
          runStart = mid;
        } else {
          d += `L${px},${py}`;
          area += `L${px},${py}`;
        }
        previous = mid;
        const lonely = (i === 0 || gap) && (i === windows.length - 1 || windows[i + 1].start - w.end > 2 * (w.end - w.start));
        if (lonely) root.append(svg('circle', { cx: px, cy: py, r: 3, class: 'dot ' + s.cls }));
      });
      closeArea();
      if (s.fill) root.append(svg('path', { d: area, class: 'area ' + s.cls }));
      root.append(svg('path', { d, class: 'series ' + s.cls }));
    }

    if (state.cursorStart !== null) {
      const w = state.windows[cursorIndex()];
      if (w && w.start >= t0) {
        const cx = x((w.start + w.end) / 2);
        root.append(svg('line', { x1: cx, x2: cx, y1: m.top, y2: m.top + plotH, class: 'cursor' }));
      }
    }

    const pick = (event) => {
      const box = root.getBoundingClientRect();
      const t = t0 + ((event.clientX - box.left) * (width / box.width) - m.left) / plotW * span;
      let best = windows[0];
      for (const w of windows) if (Math.abs((w.start + w.end) / 2 - t) < Math.abs((best.start + best.end) / 2 - t)) best = w;
      moveCursor(best.start);
    };
    root.addEventListener('pointermove', pick);
    root.addEventListener('pointerdown', pick);
    container.replaceChildren(root);
  }

  let chartFrame = null;
  /** Shows `start`'s window in the read-out (null: the newest); draws on the next frame. */
  function moveCursor(start) {
    if (state.windows.length === 0) return;
    state.cursorStart = start;
    renderReadout();
    if (chartFrame === null) {
      chartFrame = requestAnimationFrame(() => { chartFrame = null; renderCharts(); });
    }
  }

  function renderReadout() {
    const readout = $('readout');
    const w = state.windows[cursorIndex()];
    if (!w) { readout.textContent = '\u00a0'; return; }
    readout.textContent = fmtClock(w.start) + ' – ' + fmtClock(w.end) + ': in ' + fmtBits(w.inBits) +
      ', out ' + fmtBits(w.outBits) + ', ' + fmtPps(w.pps) +
      (state.cursorStart === null ? (w.record.partial ? ' (last window, partial)' : ' (last window)') : (w.record.partial ? ' (partial)' : ''));
  }

  function renderCharts() {
    drawChart($('chart-bits'), [
      { cls: 'in', fill: true, value: (w) => w.inBits },
      { cls: 'out', fill: false, value: (w) => w.outBits },
    ], fmtBits);
    drawChart($('chart-packets'), [
      { cls: 'in', fill: true, value: (w) => w.inPps },
      { cls: 'out', fill: false, value: (w) => w.outPps },
    ], fmtPps);
    renderReadout();
  }

  for (const id of ['chart-bits', 'chart-packets']) {
    const chart = $(id);
    chart.addEventListener('pointerleave', (event) => { if (event.pointerType === 'mouse') moveCursor(null); });
    // The read-out speaks only while a chart has the focus (not on every window).
    chart.addEventListener('focus', () => $('readout').setAttribute('aria-live', 'polite'));
    chart.addEventListener('blur', () => $('readout').removeAttribute('aria-live'));
    chart.addEventListener('keydown', (event) => {
      const all = state.windows;
      const n = all.length;
      if (n === 0) return;
      const first = visibleWindows().offset;
      const current = cursorIndex();
      const moves = { ArrowLeft: current - 1, ArrowRight: current + 1, Home: first, End: n - 1, PageUp: current - 12, PageDown: current + 12 };
      if (event.key in moves) {
        const target = Math.max(first, Math.min(n - 1, moves[event.key]));
        moveCursor(target === n - 1 && event.key === 'End' ? null : all[target].start);
        event.preventDefault();
      }
      if (event.key === 'Escape') moveCursor(null);
    });
  }

  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(renderCharts, 100);
  });

  if (state.authRequired) $('links-note').hidden = false;
  setInterval(() => { tickUptime(); showRetryCountdown(); watchStream(); }, 1000);
  render();
  connect();
})();
