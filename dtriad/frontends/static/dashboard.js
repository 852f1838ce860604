// dtriad dashboard: polls /dashboard/data every second and redraws the page.
// No dependencies, no build step. All data reaches the DOM through textContent
// or setAttribute (never innerHTML), so node names cannot inject markup.
'use strict';
(() => {
  const SVGNS = 'http://www.w3.org/2000/svg';
  const POLL_MS = 1000;
  const TIMEOUT_MS = 5000;
  const WINDOW_S = 300; // traffic history kept in memory: 5 minutes
  const PALETTE = ['#2f6fdb', '#e07b24', '#2a9d8f', '#8e44ad', '#d4a017', '#c2185b',
    '#16a085', '#6a8e23', '#1f77b4', '#b5651d', '#7b68ee', '#5d6d7e'];

  const $ = (id) => document.getElementById(id);
  const nf = new Intl.NumberFormat();
  const colours = new Map(); // node name -> colour, stable across polls
  const rows = new Map(); // node name -> row elements in #nodes
  const series = new Map(); // "frontend\0family" -> [{t, r}] (family '' = front-end total)
  const current = new Map(); // same keys -> {rate, ms} over the last interval
  let last = null; // last payload received
  let lastOk = 0; // Date.now() of the last successful poll
  let lost = false;
  let leaving = false;
  let prevTraffic = null; // {t, node, traffic} of the previous poll
  let selected = null; // node pinned by a click or tap
  let hovered = null; // node under the pointer

  // ---- helpers -------------------------------------------------------------
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }
  function colourOf(name) {
    if (!colours.has(name)) colours.set(name, PALETTE[colours.size % PALETTE.length]);
    return colours.get(name);
  }
  const isNum = (x) => typeof x === 'number' && Number.isFinite(x);
  const pct = (x) => (isNum(x) ? (x * 100).toFixed(1) + '%' : '—');
  const int = (x) => (isNum(x) ? nf.format(Math.round(x)) : '—');
  const rate = (r) => (!isNum(r) ? '—' : r < 10 ? r.toFixed(1) : nf.format(Math.round(r)));
  const nfc = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 });
  const crate = (r) => (isNum(r) && r >= 10000 ? nfc.format(r) : rate(r)); // fits a phone's table cell
  const ms = (m) => (!isNum(m) ? '—' : m < 10 ? m.toFixed(2) : m < 100 ? m.toFixed(1) : nf.format(Math.round(m)));
  function ago(s) {
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + 's ago';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's ago';
    if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm ago';
    return Math.floor(s / 86400) + 'd ago';
  }
  const nodeByName = (name) => (last && last.nodes || []).find((n) => n.name === name) || null;
  function describe(n) {
    const toks = (n.tokens || []).length;
    const keys = n.keys == null ? 'keys —' : int(n.keys) + ' keys';
    return `${n.name} · ${n.state} · master ${pct(n.share && n.share.master)} · ` +
      `backup ${pct(n.share && n.share.backup)} · ${keys} · ${toks} token${toks === 1 ? '' : 's'}`;
  }

  // ---- header and status ---------------------------------------------------
  function renderHeader(d) {
    $('node').textContent = d.node == null ? '' : String(d.node);
    $('epoch').textContent = d.epoch == null ? '–' : String(d.epoch);
    const pe = d.pending_epoch != null ? d.pending_epoch : d.migration ? d.migration.epoch : null;
    $('pending').hidden = pe == null;
    $('pending-epoch').textContent = pe == null ? '' : String(pe);
    document.title = `dtriad ${d.node == null ? '' : d.node} · epoch ${d.epoch}`;
  }
  function tick() {
    const st = $('status');
    let text = lastOk ? `last update ${Math.round((Date.now() - lastOk) / 1000)}s ago` : 'connecting…';
    if (lost) text = 'connection lost' + (lastOk ? ' · ' + text : '');
    st.textContent = text;
    st.classList.toggle('ok', !lost && lastOk > 0);
    document.body.classList.toggle('lost', lost);
  }

  // ---- ring ----------------------------------------------------------------
  function tag(e, kind, n, where) {
    e.setAttribute('class', `${kind} state-${n.state}`);
    e.setAttribute('data-name', n.name);
    const t = svg('title');
    t.textContent = `${describe(n)} · ${where}`;
    e.append(t);
    return e;
  }
  function renderRing(d) {
    const nodes = d.nodes || [];
    const toks = [];
    for (const n of nodes) {
      for (const t of n.tokens || []) if (isNum(t)) toks.push({ t: ((t % 1) + 1) % 1, n });
    }
    toks.sort((a, b) => a.t - b.t);
    const C = 120, R = 92;
    const pt = (f, r = R) => {
      const a = f * 2 * Math.PI - Math.PI / 2; // 0 at the top, clockwise
      return [(C + r * Math.cos(a)).toFixed(2), (C + r * Math.sin(a)).toFixed(2)];
    };
    const root = svg('svg', { viewBox: '0 0 240 240', role: 'img', 'data-nodes': nodes.length,
      'aria-label': `hash ring: ${nodes.length} nodes, ${toks.length} tokens` });
    root.append(svg('circle', { class: 'track', cx: C, cy: C, r: R }));
    toks.forEach((tk, i) => { // the arc (previous token, this token] is mastered by this token's node
      const prev = i === 0 ? toks[toks.length - 1].t - 1 : toks[i - 1].t;
      const span = tk.t - prev;
      if (span <= 0 && toks.length > 1) return;
      let shape;
      if (toks.length === 1) {
        shape = svg('circle', { cx: C, cy: C, r: R });
      } else {
        const gap = Math.min(0.002, span / 4);
        const [x0, y0] = pt(prev + gap), [x1, y1] = pt(tk.t - gap);
        shape = svg('path', { d: `M${x0} ${y0} A${R} ${R} 0 ${span - 2 * gap > 0.5 ? 1 : 0} 1 ${x1} ${y1}` });
      }
      shape.setAttribute('stroke', colourOf(tk.n.name));
      root.append(tag(shape, 'arc', tk.n, `arc (${((prev + 1) % 1).toFixed(4)}, ${tk.t.toFixed(4)}]`));
    });
    for (const tk of toks) {
      const [x, y] = pt(tk.t);
      const dot = svg('circle', { cx: x, cy: y, r: 5.5, fill: colourOf(tk.n.name) });
      root.append(tag(dot, 'tok', tk.n, `token ${tk.t.toFixed(4)}`));
    }
    const up = nodes.filter((n) => n.state === 'up').length;
    const lines = [['center center-small', C - 22, 'epoch'],
      ['center center-big', C + 6, d.epoch == null ? '–' : d.epoch],
      ['center center-small', C + 26, `${up}/${nodes.length} up`]];
    for (const [cls, y, text] of lines) {
      const t = svg('text', { class: cls, x: C, y });
      t.textContent = String(text);
      root.append(t);
    }
    $('ring').replaceChildren(root);
    const pl = (k, w) => `${k} ${w}${k === 1 ? '' : 's'}`;
    $('ring-meta').textContent = `${pl(nodes.length, 'node')} · ${pl(toks.length, 'token')} · replicas ${d.replicas ?? '—'}` +
      ` · vnodes ${d.vnodes ?? '—'} · copies ${d.copies ?? '—'}`;
  }
  function applySelection() {
    const name = hovered || selected;
    for (const e of $('ring').querySelectorAll('[data-name]')) {
      e.classList.toggle('sel', e.getAttribute('data-name') === name);
    }
    for (const [n, r] of rows) r.root.classList.toggle('sel', n === name);
    const info = $('ring-info');
    const n = name == null ? null : nodeByName(name);
    info.textContent = n ? describe(n) + (selected === name && !hovered ? ' (tap again to clear)' : '')
      : 'Hover or tap an arc or a token.';
    info.classList.toggle('active', !!n);
  }
  function nameAt(ev) {
    const t = ev.target instanceof Element ? ev.target.closest('[data-name]') : null;
    return t ? t.getAttribute('data-name') : null;
  }
  function wireSelection() {
    const ring = $('ring');
    ring.addEventListener('pointerover', (ev) => {
      if (ev.pointerType === 'mouse') { hovered = nameAt(ev); applySelection(); }
    });
    ring.addEventListener('pointerleave', () => { hovered = null; applySelection(); });
    const pick = (ev) => {
      const name = nameAt(ev);
      selected = name && name !== selected ? name : null;
      hovered = null;
      applySelection();
    };
    ring.addEventListener('click', pick);
    $('nodes').addEventListener('click', pick);
  }

  // ---- nodes ---------------------------------------------------------------
  function makeRow(name) {
    const root = el('div', 'node');
    root.setAttribute('data-name', name);
    const r = { root, swatch: el('span', 'swatch'), name: el('span', 'name', name), state: el('span', 'state'),
      master: el('span', 'num'), backup: el('span', 'num'), keys: el('span', 'num'),
      barCell: el('span', 'bar-cell'), bar: el('span', 'bar'), fill: el('span', 'fill') };
    r.master.setAttribute('data-label', 'master');
    r.backup.setAttribute('data-label', 'backup');
    r.keys.setAttribute('data-label', 'keys');
    r.bar.append(r.fill);
    r.barCell.append(r.bar);
    r.bar.setAttribute('role', 'img');
    root.append(r.swatch, r.name, r.state, r.master, r.backup, r.keys, r.barCell);
    return r;
  }
  function renderNodes(d) {
    const box = $('nodes');
    const nodes = d.nodes || [];
    const maxKeys = Math.max(0, ...nodes.map((n) => (isNum(n.keys) ? n.keys : 0)));
    const seen = new Set();
    for (const n of nodes) {
      const name = String(n.name);
      let r = rows.get(name);
      if (!r) { r = makeRow(name); rows.set(name, r); }
      seen.add(name);
      r.root.setAttribute('data-state', n.state == null ? 'unknown' : String(n.state));
      r.root.title = describe(n);
      r.state.textContent = n.state == null ? '?' : String(n.state);
      r.master.textContent = pct(n.share && n.share.master);
      r.backup.textContent = pct(n.share && n.share.backup);
      r.keys.textContent = isNum(n.keys) ? int(n.keys) : '—';
      const frac = isNum(n.keys) && maxKeys > 0 ? n.keys / maxKeys : 0;
      r.fill.style.width = (frac * 100).toFixed(1) + '%';
      r.fill.style.background = colourOf(name);
      r.bar.setAttribute('aria-label', isNum(n.keys) ? `${pct(frac)} of the largest node's keys` : 'keys unknown');
      r.swatch.style.background = colourOf(name);
      box.append(r.root); // (re)appending keeps the server's order
    }
    for (const [name, r] of rows) if (!seen.has(name)) { r.root.remove(); rows.delete(name); }
    if (!nodes.length) box.replaceChildren(el('p', 'empty', 'no nodes'));
    else for (const p of box.querySelectorAll('p.empty')) p.remove();
  }

  // ---- migration -----------------------------------------------------------
  function pair(label, value, cls) {
    const s = el('span', null, label + ' ');
    s.append(el('b', cls, value));
    return s;
  }
  function renderMigration(d) {
    const m = d.migration, out = [];
    const now = isNum(d.time) ? d.time : Date.now() / 1000;
    if (m) {
      const done = isNum(m.transfers_done) ? m.transfers_done : 0;
      const total = isNum(m.transfers) ? m.transfers : 0;
      const l1 = el('div', 'mig-line');
      l1.append(pair('epoch', m.epoch ?? '—'), pair('phase', m.phase ?? '—', 'phase'));
      const bar = el('div', 'progress'), fill = el('div', 'fill');
      fill.style.width = (total > 0 ? Math.min(100, (done / total) * 100) : 0).toFixed(1) + '%';
      bar.append(fill);
      bar.setAttribute('role', 'progressbar');
      bar.setAttribute('aria-valuemin', '0');
      bar.setAttribute('aria-valuemax', String(total));
      bar.setAttribute('aria-valuenow', String(done));
      const l2 = el('div', 'mig-line');
      l2.append(pair('transfers', `${int(done)} / ${int(total)}`), pair('keys moved', int(m.keys_moved)),
        pair('rate', rate(m.keys_per_s) + ' keys/s'));
      out.push(l1, bar, l2);
    } else {
      out.push(el('p', 'idle', 'no migration running'));
      const lm = d.last_migration;
      if (lm) {
        const l = el('div', 'mig-line');
        l.append(el('span', 'muted', 'last:'), pair('epoch', lm.epoch ?? '—'));
        if (lm.phase) l.append(pair('phase', lm.phase));
        l.append(pair('keys moved', int(lm.keys_moved)));
        if (isNum(lm.transfers)) l.append(pair('transfers', int(lm.transfers)));
        if (isNum(lm.finished)) {
          const when = new Date(lm.finished * 1000).toLocaleString();
          l.append(pair('finished', `${ago(now - lm.finished)} (${when})`));
        }
        out.push(l);
      } else {
        out.push(el('p', 'muted', 'no migration recorded since this server started'));
      }
    }
    $('migration').replaceChildren(...out);
  }

  // ---- traffic -------------------------------------------------------------
  function updateTraffic(d) {
    const t = isNum(d.time) ? d.time : Date.now() / 1000;
    const tr = d.traffic || {};
    current.clear();
    if (prevTraffic && (prevTraffic.node !== d.node || t <= prevTraffic.t)) {
      prevTraffic = null; // another server answered, or its clock went back: start afresh
      series.clear();
    }
    if (prevTraffic) {
      const dt = t - prevTraffic.t;
      for (const [fe, fams] of Object.entries(tr)) {
        let tc = 0, ts = 0;
        for (const [fam, c] of Object.entries(fams || {})) {
          const p = (prevTraffic.traffic[fe] || {})[fam] || { count: 0, seconds: 0 };
          let dc = (c.count || 0) - (p.count || 0), ds = (c.seconds || 0) - (p.seconds || 0);
          if (dc < 0 || ds < 0) { dc = c.count || 0; ds = c.seconds || 0; } // counters restarted
          record(fe, fam, t, dc / dt, dc > 0 ? (ds / dc) * 1000 : null);
          tc += dc; ts += ds;
        }
        record(fe, '', t, tc / dt, tc > 0 ? (ts / tc) * 1000 : null);
      }
    }
    prevTraffic = { t, node: d.node, traffic: tr };
    for (const [k, pts] of series) {
      while (pts.length && pts[0].t < t - WINDOW_S) pts.shift();
      if (!pts.length) series.delete(k);
    }
  }
  function record(fe, fam, t, r, m) {
    const k = fe + '\0' + fam;
    if (!series.has(k)) series.set(k, []);
    series.get(k).push({ t, r });
    current.set(k, { rate: r, ms: m });
  }
  function spark(k, now) {
    const W = 100, H = 20, pts = series.get(k) || [];
    const s = svg('svg', { class: 'spark', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none' });
    s.append(svg('line', { class: 'base', x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5 }));
    const max = Math.max(0, ...pts.map((p) => p.r));
    if (pts.length) {
      const xy = pts.map((p) => `${(((p.t - now + WINDOW_S) / WINDOW_S) * W).toFixed(2)},` +
        `${(H - 1 - (max > 0 ? p.r / max : 0) * (H - 3)).toFixed(2)}`);
      if (xy.length === 1) xy.unshift(`${W - 1},${xy[0].split(',')[1]}`);
      s.append(svg('polyline', { points: xy.join(' ') }));
    }
    const title = svg('title');
    title.textContent = `last 5 min, peak ${rate(max)} req/s`;
    s.append(title);
    return s;
  }
  function row(cls, label, k, errors, now) {
    const tr = el('tr', cls), cur = current.get(k) || {};
    const err = el('td', errors > 0 ? 'err' : null, int(errors));
    const sp = el('td');
    sp.append(spark(k, now));
    tr.append(el('td', null, label), el('td', null, crate(cur.rate)), el('td', null, ms(cur.ms)), err, sp);
    return tr;
  }
  function renderTraffic(d) {
    const tr = d.traffic || {}, out = [];
    const now = isNum(d.time) ? d.time : Date.now() / 1000;
    for (const fe of Object.keys(tr).sort()) {
      const fams = tr[fe] || {};
      const box = el('div', 'fe');
      box.append(el('h3', null, fe));
      const table = el('table'), head = el('tr');
      for (const [h, tip] of [['family', 'command family'], ['req/s', 'requests per second, last interval'],
        ['ms', 'mean latency, last interval'], ['err', 'errors since the server started'],
        ['last 5 min', 'request rate over the last 5 minutes']]) {
        const th = el('th', null, h);
        th.title = tip;
        head.append(th);
      }
      const thead = el('thead'), tbody = el('tbody');
      thead.append(head);
      let errs = 0;
      for (const fam of Object.keys(fams).sort()) {
        const e = (fams[fam] && fams[fam].errors) || 0;
        errs += e;
        tbody.append(row(null, fam, fe + '\0' + fam, e, now));
      }
      tbody.append(row('total', 'total', fe + '\0', errs, now));
      table.append(thead, tbody);
      box.append(table);
      out.push(box);
    }
    if (!out.length) out.push(el('p', 'empty', 'no requests yet'));
    else if (!prevTraffic || !current.size) out.push(el('p', 'muted small', 'rates appear after the second poll'));
    $('traffic').replaceChildren(...out);
  }

  // ---- polling -------------------------------------------------------------
  function render(d) {
    last = d;
    renderHeader(d);
    updateTraffic(d);
    renderRing(d);
    renderNodes(d);
    renderMigration(d);
    renderTraffic(d);
    applySelection();
  }
  async function poll() {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    try {
      const res = await fetch('/dashboard/data', { credentials: 'same-origin', cache: 'no-store', signal: ctl.signal });
      if (res.status === 401) { leaving = true; window.location.href = '/dashboard'; return; }
      if (!res.ok) throw new Error('HTTP ' + res.status);
      const d = await res.json();
      lost = false;
      lastOk = Date.now();
      try { render(d); } catch (e) { console.error('dashboard: render failed', e); }
    } catch (e) {
      lost = true;
      console.warn('dashboard: poll failed', e);
    } finally {
      clearTimeout(timer);
      tick();
      if (!leaving) setTimeout(poll, POLL_MS);
    }
  }
  function start() {
    wireSelection();
    setInterval(tick, 1000);
    poll();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
