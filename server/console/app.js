// The Sluice web console: a single-page app on the broker's own APIs, no framework.
//
// Data: the WebSocket protocol through /v1/client.js (topics, groups, produce, live tail with
// an optional filter plugin), and HTTP for /metrics (polled every second: throughput, sizes,
// offsets of every topic at once), /healthz, /readyz, /v1/cluster and /v1/plugins (list,
// upload, delete). Pages are addressed by the URL hash (#/topics, #/topics/<name>, #/groups,
// #/groups/<name>, #/plugins, #/broker), so reloads and links keep the page.

import { Sluice } from '/v1/client.js';

// ---------------------------------------------------------------------------------------------
// DOM and formatting helpers

function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'selected') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const $ = (sel, root = document) => root.querySelector(sel);

const NUM = new Intl.NumberFormat('en-US');
const fmtNum = (n) => (n === null || n === undefined || Number.isNaN(n) ? '–' : NUM.format(n));

function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? Math.round(n) : n.toFixed(n < 10 ? 2 : 1)} ${units[i]}`;
}

function fmtRate(n) {
  if (!n) return '0';
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n >= 10 ? String(Math.round(n)) : n.toFixed(1);
}

function fmtTime(ms) {
  const d = new Date(ms);
  const p = (x, n = 2) => String(x).padStart(n, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function fmtDuration(ms) {
  const n = Number(ms);
  if (!Number.isFinite(n) || n < 0) return 'forever';
  if (n % 86400000 === 0) return `${n / 86400000} d`;
  if (n % 3600000 === 0) return `${n / 3600000} h`;
  if (n % 60000 === 0) return `${n / 60000} min`;
  return `${n} ms`;
}

/** A payload for display: strings as they are, bytes as hex, null as ∅. */
function showPayload(p, max = 200) {
  if (p === null || p === undefined) return h('span', { class: 'null', text: 'null' });
  if (p instanceof Uint8Array) {
    const hex = [...p.subarray(0, 64)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    return h('span', { class: 'binary', text: `0x ${hex}${p.length > 64 ? ' …' : ''} (${p.length} B)` });
  }
  const s = String(p);
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

function fullPayload(p) {
  if (p === null || p === undefined) return 'null';
  if (p instanceof Uint8Array) {
    const lines = [];
    for (let i = 0; i < p.length; i += 16) {
      const row = [...p.subarray(i, i + 16)];
      lines.push(`${i.toString(16).padStart(6, '0')}  ${row.map((b) => b.toString(16).padStart(2, '0')).join(' ').padEnd(48)}  ${row.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('')}`);
    }
    return lines.join('\n');
  }
  try {
    const v = JSON.parse(p);
    if (v && typeof v === 'object') return JSON.stringify(v, null, 2);
  } catch { /* not JSON */ }
  return String(p);
}

function payloadText(p) {
  if (p === null || p === undefined) return '';
  if (p instanceof Uint8Array) return '';
  return String(p);
}

function errText(e) {
  return e && e.code ? `${e.code}: ${e.message}` : String(e && e.message ? e.message : e);
}

function toast(message, kind = 'ok') {
  const el = h('div', { class: `toast ${kind}`, role: kind === 'bad' ? 'alert' : 'status' }, message);
  $('#toasts').append(el);
  setTimeout(() => el.remove(), kind === 'bad' ? 7000 : 3500);
}

function toastError(e, what) {
  toast(h('span', {}, what ? `${what}: ` : '', h('code', { text: e && e.code ? e.code : 'error' }), ' ', e && e.message ? e.message : String(e)), 'bad');
}

const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

// ---------------------------------------------------------------------------------------------
// Polling: run now, then every `ms` after the previous run finished; paused while hidden.

function poll(fn, ms) {
  let stopped = false;
  let timer = null;
  const run = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try {
        await fn();
      } catch (e) {
        if (!stopped && e && e.code !== 'disconnected') console.warn(e);
      }
    }
    if (!stopped) timer = setTimeout(run, ms);
  };
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// ---------------------------------------------------------------------------------------------
// Metrics: /metrics every second → per-topic rates (records/s, bytes/s in and out) and gauges
// (bytes on disk, log start and end offsets, summed over partitions).

const KEEP_MS = 15 * 60 * 1000; // samples kept per topic: one a second
const METRIC = /^sluice_(records_in_total|bytes_in_total|records_out_total|bytes_out_total|log_size_bytes|log_end_offset|log_start_offset)\{([^}]*)\}\s+(\S+)/;

function parseMetrics(text) {
  const topics = new Map();
  const global = {};
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line) continue;
    const m = METRIC.exec(line);
    if (!m) {
      const g = /^sluice_(connections|websocket_connections)\s+(\S+)/.exec(line);
      if (g) global[g[1]] = Number(g[2]);
      continue;
    }
    const topic = /topic="([^"]*)"/.exec(m[2]);
    if (!topic) continue;
    if (!topics.has(topic[1])) {
      topics.set(topic[1], { records_in_total: 0, bytes_in_total: 0, records_out_total: 0, bytes_out_total: 0, log_size_bytes: 0, log_end_offset: 0, log_start_offset: 0, partitions: 0 });
    }
    const t = topics.get(topic[1]);
    t[m[1]] += Number(m[3]);
    if (m[1] === 'log_size_bytes') t.partitions++;
  }
  return { topics, global };
}

class Sampler {
  constructor() {
    this.series = new Map(); // topic → [{t, recIn, bytesIn, recOut, bytesOut}]
    this.gauges = new Map(); // topic → parsed counters and gauges
    this.global = {};
    this.listeners = new Set();
    this.prev = null;
    this.ok = false;
  }

  start() {
    poll(() => this.tick(), 1000);
  }

  async tick() {
    let text;
    try {
      const r = await fetch('/metrics', { cache: 'no-store' });
      text = await r.text();
    } catch {
      this.ok = false;
      return;
    }
    this.ok = true;
    const now = Date.now();
    const { topics, global } = parseMetrics(text);
    this.global = global;
    if (this.prev) {
      const dt = (now - this.prev.t) / 1000;
      for (const [name, cur] of topics) {
        const before = this.prev.topics.get(name);
        const rate = (k) => (before ? Math.max(0, cur[k] - before[k]) / dt : 0);
        if (!this.series.has(name)) this.series.set(name, []);
        const s = this.series.get(name);
        s.push({ t: now, recIn: rate('records_in_total'), bytesIn: rate('bytes_in_total'), recOut: rate('records_out_total'), bytesOut: rate('bytes_out_total') });
        while (s.length && s[0].t < now - KEEP_MS) s.shift();
      }
      for (const name of this.series.keys()) if (!topics.has(name)) this.series.delete(name);
    }
    this.gauges = topics;
    this.prev = { t: now, topics };
    for (const fn of this.listeners) fn();
  }

  on(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  latest(topic) {
    const s = this.series.get(topic);
    return s && s.length ? s[s.length - 1] : { recIn: 0, bytesIn: 0, recOut: 0, bytesOut: 0 };
  }
}

// ---------------------------------------------------------------------------------------------
// Charts on <canvas>: two panels (records/s and bytes/s), "in" as a filled area, "out" as a line.

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fitCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const hgt = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(hgt * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { ctx, w, hgt };
}

function drawThroughput(canvas, all, windowMs, hover) {
  const { ctx, w, hgt } = fitCanvas(canvas);
  if (!w || !hgt) return;
  ctx.clearRect(0, 0, w, hgt);
  const colors = { in: cssVar('--accent'), out: cssVar('--accent-2'), grid: cssVar('--line'), text: cssVar('--muted') };
  const now = Date.now();
  const samples = all.filter((s) => s.t >= now - windowMs);
  const left = 64;
  const right = 12;
  const gap = 26;
  const top = 10;
  const panelH = (hgt - top - gap - 20) / 2;
  const x = (t) => left + ((t - (now - windowMs)) / windowMs) * (w - left - right);
  ctx.font = `11px ${cssVar('--mono') || 'monospace'}`;
  const panels = [
    { top, label: 'records/s', inKey: 'recIn', outKey: 'recOut', fmt: fmtRate, least: 1 },
    { top: top + panelH + gap, label: 'bytes/s', inKey: 'bytesIn', outKey: 'bytesOut', fmt: (v) => fmtBytes(v), least: 1024 },
  ];
  for (const p of panels) {
    const max = niceMax(Math.max(p.least, ...samples.map((s) => Math.max(s[p.inKey], s[p.outKey]))));
    const y = (v) => p.top + panelH - (v / max) * panelH;
    ctx.strokeStyle = colors.grid;
    ctx.fillStyle = colors.text;
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (const f of [0, 0.5, 1]) {
      const yy = Math.round(y(max * f)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, yy);
      ctx.lineTo(w - right, yy);
      ctx.stroke();
      ctx.fillText(p.fmt(max * f), left - 6, yy);
    }
    ctx.textAlign = 'left';
    ctx.textBaseline = 'top';
    ctx.fillText(p.label, left + 4, p.top + 2);
    if (samples.length) {
      ctx.beginPath();
      ctx.moveTo(x(samples[0].t), y(0));
      for (const s of samples) ctx.lineTo(x(s.t), y(s[p.inKey]));
      ctx.lineTo(x(samples[samples.length - 1].t), y(0));
      ctx.closePath();
      ctx.globalAlpha = 0.25;
      ctx.fillStyle = colors.in;
      ctx.fill();
      ctx.globalAlpha = 1;
      const line = (key, color, dash) => {
        ctx.beginPath();
        samples.forEach((s, i) => (i ? ctx.lineTo(x(s.t), y(s[key])) : ctx.moveTo(x(s.t), y(s[key]))));
        ctx.strokeStyle = color;
        ctx.setLineDash(dash);
        ctx.lineWidth = 1.5;
        ctx.stroke();
        ctx.setLineDash([]);
      };
      line(p.inKey, colors.in, []);
      line(p.outKey, colors.out, [4, 3]);
    }
  }
  // Time axis: six ticks.
  ctx.fillStyle = colors.text;
  ctx.textAlign = 'center';
  ctx.textBaseline = 'bottom';
  for (let i = 5; i >= 0; i--) {
    const ago = (windowMs / 5) * i;
    const label = i === 0 ? 'now' : ago % 60000 === 0 ? `-${ago / 60000}m` : `-${ago / 1000}s`;
    ctx.fillText(label, Math.max(left + 12, Math.min(w - right - 12, x(now - ago))), hgt - 2);
  }
  // Hover: the nearest sample's values.
  if (hover !== null && hover !== undefined && samples.length) {
    let best = samples[0];
    for (const s of samples) if (Math.abs(x(s.t) - hover) < Math.abs(x(best.t) - hover)) best = s;
    const xx = Math.round(x(best.t)) + 0.5;
    ctx.strokeStyle = colors.text;
    ctx.beginPath();
    ctx.moveTo(xx, 4);
    ctx.lineTo(xx, hgt - 20);
    ctx.stroke();
    const lines = [fmtTime(best.t).slice(0, 8), `in  ${fmtRate(best.recIn)} rec/s  ${fmtBytes(best.bytesIn)}/s`, `out ${fmtRate(best.recOut)} rec/s  ${fmtBytes(best.bytesOut)}/s`];
    const bw = Math.max(...lines.map((l) => ctx.measureText(l).width)) + 14;
    const bx = xx + bw + 10 > w ? xx - bw - 6 : xx + 6;
    ctx.fillStyle = cssVar('--panel');
    ctx.strokeStyle = colors.grid;
    ctx.fillRect(bx, 8, bw, 52);
    ctx.strokeRect(bx + 0.5, 8.5, bw, 52);
    ctx.fillStyle = cssVar('--text');
    ctx.textAlign = 'left';
    ctx.textBaseline = 'top';
    lines.forEach((l, i) => ctx.fillText(l, bx + 7, 13 + i * 15));
  }
}

function drawSparkline(canvas, samples) {
  const { ctx, w, hgt } = fitCanvas(canvas);
  ctx.clearRect(0, 0, w, hgt);
  const last = samples.slice(-60);
  if (last.length < 2) return;
  const max = Math.max(1, ...last.map((s) => s.recIn));
  const step = (w - 2) / 59; // one sample a second, the newest at the right edge
  ctx.beginPath();
  last.forEach((s, i) => {
    const xx = w - 1 - (last.length - 1 - i) * step;
    const yy = hgt - 2 - (s.recIn / max) * (hgt - 4);
    if (i) ctx.lineTo(xx, yy);
    else ctx.moveTo(xx, yy);
  });
  ctx.strokeStyle = cssVar('--accent');
  ctx.lineWidth = 1.2;
  ctx.stroke();
}

// ---------------------------------------------------------------------------------------------
// Dialogs

function openDialog(build) {
  const dlg = h('dialog', {});
  document.body.append(dlg);
  const close = () => dlg.close();
  dlg.addEventListener('close', () => dlg.remove());
  build(dlg, close);
  dlg.showModal();
  const first = dlg.querySelector('[autofocus]') || dlg.querySelector('input, textarea, select, button');
  if (first) first.focus();
  return dlg;
}

function createTopicDialog() {
  openDialog((dlg, close) => {
    const error = h('div', { class: 'error' });
    const name = h('input', { name: 'name', required: true, pattern: '[a-zA-Z0-9._\\-]+', maxlength: 249, placeholder: 'orders', autofocus: true, autocomplete: 'off', spellcheck: 'false' });
    const partitions = h('input', { name: 'partitions', type: 'number', min: 1, value: '3', required: true });
    const retention = h('select', { name: 'retention' },
      h('option', { value: '', text: 'broker default' }),
      h('option', { value: '3600000', text: '1 hour' }),
      h('option', { value: '86400000', text: '1 day' }),
      h('option', { value: '604800000', text: '7 days' }),
      h('option', { value: '-1', text: 'forever' }));
    const cleanup = h('select', { name: 'cleanup' }, h('option', { value: 'delete', text: 'delete (retention)' }), h('option', { value: 'compact', text: 'compact (keep the last value per key)' }));
    const submit = h('button', { class: 'primary', type: 'submit', text: 'Create' });
    const form = h('form', { class: 'stack', id: 'create-topic-form' },
      h('label', { class: 'field' }, 'Name', name),
      h('div', { class: 'row' }, h('label', { class: 'field' }, 'Partitions', partitions)),
      h('label', { class: 'field' }, 'Retention', retention),
      h('label', { class: 'field' }, 'Cleanup policy', cleanup),
      error,
      h('div', { class: 'buttons' }, h('button', { type: 'button', text: 'Cancel', onclick: close }), submit));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      error.textContent = '';
      const configs = {};
      if (retention.value) configs['retention.ms'] = retention.value;
      if (cleanup.value !== 'delete') configs['cleanup.policy'] = cleanup.value;
      try {
        await app.client.createTopic(name.value.trim(), { partitions: Number(partitions.value), configs });
        close();
        toast(`Topic ${name.value.trim()} created`);
        location.hash = `#/topics/${encodeURIComponent(name.value.trim())}`;
      } catch (e) {
        error.textContent = errText(e);
        submit.disabled = false;
      }
    });
    dlg.append(h('h2', { text: 'New topic' }), form);
  });
}

function deleteTopicDialog(topic, after) {
  openDialog((dlg, close) => {
    const error = h('div', { class: 'error' });
    const confirm = h('input', { placeholder: topic, autocomplete: 'off', spellcheck: 'false', autofocus: true, 'aria-label': 'Topic name to confirm' });
    const submit = h('button', { class: 'danger solid', type: 'submit', text: 'Delete topic', disabled: true });
    confirm.addEventListener('input', () => {
      submit.disabled = confirm.value !== topic;
    });
    const form = h('form', { class: 'stack' },
      h('p', {}, 'This deletes ', h('strong', { text: topic }), ' and all its records. Type its name to confirm.'),
      confirm, error,
      h('div', { class: 'buttons' }, h('button', { type: 'button', text: 'Cancel', onclick: close }), submit));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (confirm.value !== topic) return;
      submit.disabled = true;
      try {
        await app.client.deleteTopic(topic);
        close();
        toast(`Topic ${topic} deleted`);
        after?.();
      } catch (e) {
        error.textContent = errText(e);
        submit.disabled = false;
      }
    });
    dlg.append(h('h2', { text: 'Delete topic' }), form);
  });
}

function recordDialog(r) {
  openDialog((dlg, close) => {
    const headers = Object.entries(r.headers || {});
    dlg.append(
      h('h2', { text: `${r.topic} · partition ${r.partition} · offset ${fmtNum(r.offset)}` }),
      h('dl', { class: 'meta' },
        h('dt', { text: 'timestamp' }), h('dd', { text: `${new Date(r.timestamp).toISOString()} (${r.timestamp})` }),
        h('dt', { text: 'key' }), h('dd', {}, showPayload(r.key, 1000)),
        headers.length ? [h('dt', { text: 'headers' }), h('dd', {}, headers.map(([k, v]) => h('div', {}, `${k}: `, showPayload(v, 300))))] : null),
      h('pre', { class: 'record-value', text: fullPayload(r.value) }),
      h('div', { class: 'buttons' },
        h('button', { type: 'button', text: 'Copy value', onclick: () => navigator.clipboard?.writeText(payloadText(r.value)).then(() => toast('Copied')) }),
        h('button', { type: 'button', text: 'Close', onclick: close })));
  });
}

// ---------------------------------------------------------------------------------------------
// Lists with keyboard selection (j/k, Enter)

class Selection {
  constructor(tbody) {
    this.tbody = tbody;
    this.index = -1;
  }

  rows() {
    return [...this.tbody.querySelectorAll('tr[data-href]')].filter((r) => !r.hidden);
  }

  move(d) {
    const rows = this.rows();
    if (!rows.length) return;
    this.index = Math.max(0, Math.min(rows.length - 1, this.index + d));
    for (const r of this.tbody.querySelectorAll('tr[aria-selected]')) r.removeAttribute('aria-selected');
    rows[this.index].setAttribute('aria-selected', 'true');
    rows[this.index].scrollIntoView({ block: 'nearest' });
  }

  open() {
    const row = this.rows()[this.index];
    if (row) location.hash = row.dataset.href;
  }
}

// ---------------------------------------------------------------------------------------------
// Topics page

class TopicsPage {
  constructor() {
    this.filterText = '';
    this.showInternal = false;
    this.topics = [];
    this.rows = new Map();
    this.tbody = h('tbody', {}, h('tr', {}, h('td', { colspan: 10, class: 'empty', text: 'Loading…' })));
    this.selection = new Selection(this.tbody);
    this.count = h('span', { class: 'badge' });
    const internal = h('input', { type: 'checkbox', onchange: (e) => { this.showInternal = e.target.checked; this.render(); } });
    this.el = h('section', { id: 'topics-page' },
      h('div', { class: 'head' },
        h('h1', { text: 'Topics' }), this.count,
        h('span', { class: 'spacer' }),
        h('label', { class: 'inline' }, internal, 'internal topics'),
        h('button', { class: 'primary', id: 'new-topic', type: 'button', onclick: createTopicDialog }, 'New topic', h('kbd', { text: 'c' }))),
      h('div', { class: 'panel' }, h('div', { class: 'table-wrap' },
        h('table', { class: 'grid', id: 'topics-table' },
          h('thead', {}, h('tr', {},
            h('th', { text: 'Topic' }), h('th', { class: 'num', text: 'Partitions' }), h('th', { class: 'num', text: 'Records' }),
            h('th', { class: 'num', text: 'Size' }), h('th', { class: 'num', text: 'Earliest Σ', title: 'Sum over partitions of the first stored offset' }),
            h('th', { class: 'num', text: 'Latest Σ', title: 'Sum over partitions of the log end offset' }),
            h('th', { class: 'num', text: 'In rec/s' }), h('th', { class: 'num', text: 'In bytes/s' }), h('th', { text: 'Last minute' }), h('th', {}))),
          this.tbody))));
    this.keys = { c: createTopicDialog };
    this.stop = poll(() => this.load(), 2000);
    this.off = app.sampler.on(() => this.update());
  }

  async load() {
    this.topics = await app.client.listTopics();
    this.render();
  }

  filter(text) {
    this.filterText = text.toLowerCase();
    this.render();
  }

  render() {
    const visible = this.topics.filter((t) => (this.showInternal || !t.internal) && t.name.toLowerCase().includes(this.filterText));
    this.count.textContent = String(visible.length);
    const names = new Set(visible.map((t) => t.name));
    for (const [name, row] of this.rows) {
      if (!names.has(name)) {
        row.tr.remove();
        this.rows.delete(name);
      }
    }
    if (!visible.length) {
      this.tbody.replaceChildren(h('tr', {}, h('td', { colspan: 10, class: 'empty' },
        this.topics.length ? 'No topic matches the filter.' : ['No topics yet. Press ', h('kbd', { text: 'c' }), ' to create one.'])));
      this.rows.clear();
      return;
    }
    const ordered = [];
    for (const t of visible) {
      let row = this.rows.get(t.name);
      if (!row) {
        const cells = {};
        const td = (key, cls) => (cells[key] = h('td', { class: cls }));
        const href = `#/topics/${encodeURIComponent(t.name)}`;
        const spark = h('canvas', { width: 120, height: 24, class: 'spark' });
        spark.style.width = '120px';
        spark.style.height = '24px';
        const tr = h('tr', { 'data-href': href, 'data-topic': t.name },
          h('td', {}, h('a', { href, text: t.name }), t.internal ? [' ', h('span', { class: 'badge', text: 'internal' })] : null),
          td('partitions', 'num'), td('records', 'num'), td('size', 'num'), td('earliest', 'num'), td('latest', 'num'),
          td('recIn', 'num'), td('bytesIn', 'num'), h('td', {}, spark),
          h('td', { class: 'actions' }, t.internal ? null : h('button', { class: 'ghost danger', type: 'button', title: 'Delete topic', text: 'Delete', onclick: (ev) => { ev.stopPropagation(); deleteTopicDialog(t.name, () => this.load()); } })));
        tr.addEventListener('click', (ev) => { if (ev.target.tagName !== 'A' && ev.target.tagName !== 'BUTTON') location.hash = href; });
        row = { tr, cells, spark };
        this.rows.set(t.name, row);
      }
      row.cells.partitions.textContent = fmtNum(t.partitions);
      ordered.push(row.tr);
    }
    const current = [...this.tbody.children];
    if (current.length !== ordered.length || current.some((tr, i) => tr !== ordered[i])) this.tbody.replaceChildren(...ordered);
    this.update();
  }

  update() {
    for (const [name, row] of this.rows) {
      const g = app.sampler.gauges.get(name);
      const r = app.sampler.latest(name);
      const c = row.cells;
      c.records.textContent = g ? fmtNum(g.log_end_offset - g.log_start_offset) : '–';
      c.size.textContent = g ? fmtBytes(g.log_size_bytes) : '–';
      c.earliest.textContent = g ? fmtNum(g.log_start_offset) : '–';
      c.latest.textContent = g ? fmtNum(g.log_end_offset) : '–';
      c.recIn.textContent = fmtRate(r.recIn);
      c.bytesIn.textContent = `${fmtBytes(r.bytesIn)}/s`;
      drawSparkline(row.spark, app.sampler.series.get(name) || []);
    }
  }

  move(d) { this.selection.move(d); }

  open() { this.selection.open(); }

  destroy() {
    this.stop();
    this.off();
  }
}

// ---------------------------------------------------------------------------------------------
// Live tail: a broadcast subscription or a group membership, rendered newest first.

class Tail {
  constructor(topic, page) {
    this.topic = topic;
    this.page = page;
    this.source = null;
    this.paused = false;
    this.resume = null;
    this.pending = [];
    this.count = 0;
    this.maxRows = 500;
    this.filterText = '';
    this.frame = 0;
    this.tbody = h('tbody', { id: 'tail-rows' });
    this.status = h('span', { class: 'status', id: 'tail-status', text: 'stopped' });
    this.assignment = h('div', { class: 'assignment', id: 'tail-assignment', hidden: true });
    this.mode = h('select', { id: 'tail-mode', 'aria-label': 'Consume as', onchange: () => this.modeChanged() },
      h('option', { value: 'broadcast', text: 'every partition' }),
      h('option', { value: 'group', text: 'group member' }));
    this.group = h('input', { id: 'tail-group', class: 'group-name', placeholder: 'group id', hidden: true, autocomplete: 'off', spellcheck: 'false', value: 'console' });
    this.from = h('select', { id: 'tail-from', 'aria-label': 'Start at', onchange: () => { this.offset.hidden = this.from.value !== 'offset'; } },
      h('option', { value: 'latest', text: 'from latest' }),
      h('option', { value: 'earliest', text: 'from earliest' }),
      h('option', { value: 'offset', text: 'from offset…' }));
    this.offset = h('input', { type: 'number', min: 0, value: '0', hidden: true, 'aria-label': 'Offset' });
    this.startButton = h('button', { type: 'button', id: 'tail-start', text: 'Restart', onclick: () => this.start() });
    this.pauseButton = h('button', { type: 'button', id: 'tail-pause', onclick: () => this.togglePause() }, 'Pause', h('kbd', { text: 'p' }));
    this.max = h('select', { id: 'tail-max', 'aria-label': 'Rows kept', onchange: () => { this.maxRows = Number(this.max.value); this.trim(); } },
      [100, 500, 1000, 5000].map((n) => h('option', { value: String(n), text: `${n} rows`, selected: n === 500 })));
    // The broker-side filter: an uploaded filter plugin and its parameters.
    this.active = null; // the filter of the running tail: {plugin, params} or null
    this.plugin = h('select', { id: 'tail-plugin', 'aria-label': 'Filter plugin', onfocus: () => this.loadPlugins() },
      h('option', { value: '', text: 'no filter plugin' }));
    this.params = h('input', { id: 'tail-params', class: 'params', placeholder: 'keyword=error&in=value', autocomplete: 'off', spellcheck: 'false', 'aria-label': 'Filter parameters, name=value joined by &' });
    this.filterForm = h('form', { class: 'tail-filter', id: 'tail-filter' },
      h('span', { class: 'muted', text: 'Filter in the broker' }), this.plugin, this.params,
      h('button', { type: 'submit', id: 'tail-filter-apply' }, 'Apply', h('kbd', { text: 'f' })),
      (this.filterBadge = h('span', { class: 'badge', id: 'tail-filter-active', hidden: true })));
    this.filterForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.applyFilter();
    });
    this.loadPlugins();
    this.el = h('div', { class: 'panel', id: 'tail' },
      h('h2', {}, 'Live tail', h('span', { class: 'spacer' })),
      h('div', { class: 'tail-controls' },
        this.mode, this.group, this.from, this.offset, this.startButton, this.pauseButton,
        h('button', { type: 'button', id: 'tail-clear', onclick: () => this.clear() }, 'Clear', h('kbd', { text: 'x' })),
        this.max, this.status),
      this.filterForm,
      this.assignment,
      h('div', { class: 'tail' }, h('table', { class: 'grid' },
        h('thead', {}, h('tr', {}, h('th', { text: 'Time' }), h('th', { class: 'num', text: 'P' }), h('th', { class: 'num', text: 'Offset' }), h('th', { text: 'Key' }), h('th', { text: 'Value' }), h('th', { class: 'num', text: 'Hdrs' }))),
        this.tbody)));
  }

  /** Fills the plugin list with the uploaded filter plugins (keeps the current choice). */
  async loadPlugins() {
    let list;
    try {
      list = await fetchPlugins();
    } catch {
      return;
    }
    const names = list.filter((p) => p.kind === 'filter').map((p) => p.name);
    const keep = this.plugin.value;
    const have = [...this.plugin.options].slice(1).map((o) => o.value);
    if (have.join('\n') !== names.join('\n')) {
      this.plugin.replaceChildren(h('option', { value: '', text: names.length ? 'no filter plugin' : 'no filter plugins uploaded' }),
        ...names.map((n) => h('option', { value: n, text: n })));
    }
    this.plugin.value = names.includes(keep) ? keep : '';
  }

  /** Parses `a=1&b=2` (or one pair per line) into params; throws on a pair without `=`. */
  static parseParams(text) {
    const params = {};
    for (const pair of text.split(/[&\n]/)) {
      if (!pair.trim()) continue;
      const i = pair.indexOf('=');
      if (i <= 0) throw new Error(`"${pair.trim()}" is not name=value`);
      params[pair.slice(0, i).trim()] = pair.slice(i + 1);
    }
    return params;
  }

  /** Restarts the tail with the chosen filter plugin (or without one). */
  async applyFilter() {
    const plugin = this.plugin.value;
    let filter = null;
    if (plugin) {
      try {
        filter = { plugin, params: Tail.parseParams(this.params.value) };
      } catch (e) {
        toastError(e, 'Filter parameters');
        return;
      }
    }
    const before = this.active;
    this.active = filter;
    // Refused (unknown plugin, parameters its init rejects): the error is shown and the tail
    // goes on as it was.
    if (!(await this.start())) {
      this.active = before;
      await this.start();
    }
  }

  showFilter() {
    const f = this.active;
    this.filterBadge.hidden = !f;
    this.filterBadge.dataset.plugin = f ? f.plugin : '';
    this.filterBadge.textContent = f ? `filtered by ${f.plugin}${Object.keys(f.params).length ? ` (${Object.entries(f.params).map(([k, v]) => `${k}=${v}`).join(', ')})` : ''}` : '';
  }

  modeChanged() {
    const group = this.mode.value === 'group';
    this.group.hidden = !group;
    this.startButton.textContent = group ? 'Join' : 'Restart';
    if (group) this.group.focus();
    else this.start();
  }

  fromValue() {
    if (this.from.value === 'offset') return { offset: Number(this.offset.value) || 0 };
    return this.from.value;
  }

  async start() {
    await this.stop();
    const source = this.mode.value;
    this.setStatus('starting…');
    try {
      if (source === 'group') {
        const group = this.group.value.trim();
        if (!group) throw new Error('enter a group id');
        if (this.active) {
          // A member subscribes per assigned partition, later; check the filter now, so a
          // refused one is reported here rather than leaving partitions unconsumed.
          const probe = await app.client.subscribe({ topic: this.topic, from: 'latest', creditBytes: 1, filter: this.active });
          probe.close();
        }
        this.source = await app.client.joinGroup({
          group,
          topics: [this.topic],
          from: this.from.value === 'earliest' ? 'earliest' : 'latest',
          filter: this.active || undefined,
        });
        this.source.on('assignment', () => this.showAssignment());
        this.showAssignment();
      } else {
        this.source = await app.client.subscribe({ topic: this.topic, from: this.fromValue(), creditBytes: 256 * 1024, filter: this.active || undefined });
        this.assignment.hidden = true;
      }
    } catch (e) {
      this.source = null;
      this.setStatus('stopped');
      toastError(e, 'Live tail');
      return false;
    }
    this.showFilter();
    this.paused = false;
    this.pauseButton.firstChild.textContent = 'Pause';
    this.updateStatus();
    this.run(this.source);
    return true;
  }

  showAssignment() {
    const m = this.source;
    if (!m || !m.memberId) return;
    const parts = m.assignment.map((tp) => tp.partition);
    this.assignment.hidden = false;
    this.assignment.dataset.partitions = parts.join(',');
    this.assignment.replaceChildren(
      `member of ${m.group} · owns `,
      ...(parts.length ? parts.map((p) => h('span', { class: 'chip mine', text: `P${p}` })) : [h('em', { text: 'no partitions' })]),
      h('span', { class: 'muted', text: ` · member ${m.memberId} · epoch ${m.memberEpoch}` }));
    this.updateStatus();
  }

  async run(source) {
    try {
      for await (const r of source) {
        // While paused nothing more is taken, so the credit runs out and the broker waits.
        if (this.paused) await new Promise((resolve) => { this.resume = resolve; });
        if (source !== this.source) break;
        this.pending.push(r);
        this.count++;
        this.schedule();
      }
      if (source === this.source) this.setStatus('ended');
    } catch (e) {
      if (source === this.source) {
        this.setStatus('stopped');
        toastError(e, 'Live tail');
      }
    }
  }

  async stop() {
    const s = this.source;
    this.source = null;
    if (this.resume) this.resume();
    if (s) await s.close();
    this.assignment.hidden = true;
    this.setStatus('stopped');
  }

  togglePause() {
    if (!this.source) return;
    this.paused = !this.paused;
    this.pauseButton.firstChild.textContent = this.paused ? 'Resume' : 'Pause';
    if (!this.paused && this.resume) {
      const r = this.resume;
      this.resume = null;
      r();
    }
    this.updateStatus();
  }

  clear() {
    this.pending = [];
    this.count = 0;
    this.tbody.replaceChildren();
    this.updateStatus();
  }

  filter(text) {
    this.filterText = text.toLowerCase();
    for (const tr of this.tbody.children) tr.hidden = !this.matches(tr.record);
  }

  matches(r) {
    if (!this.filterText) return true;
    return payloadText(r.value).toLowerCase().includes(this.filterText) || payloadText(r.key).toLowerCase().includes(this.filterText);
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = 0;
    const batch = this.pending.splice(0).slice(-this.maxRows);
    const frag = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) {
      const r = batch[i];
      const tr = h('tr', { class: 'fresh', 'data-partition': r.partition, 'data-offset': r.offset, onclick: () => recordDialog(r) },
        h('td', { text: fmtTime(r.timestamp) }),
        h('td', { class: 'num', text: String(r.partition) }),
        h('td', { class: 'num', text: String(r.offset) }),
        h('td', { class: 'key' }, showPayload(r.key, 80)),
        h('td', { class: 'value' }, showPayload(r.value)),
        h('td', { class: 'num', text: String(Object.keys(r.headers).length) }));
      tr.record = r;
      tr.hidden = !this.matches(r);
      frag.append(tr);
    }
    this.tbody.prepend(frag);
    this.trim();
    this.updateStatus();
  }

  trim() {
    while (this.tbody.children.length > this.maxRows) this.tbody.lastChild.remove();
  }

  setStatus(text) {
    this.status.textContent = text;
    this.status.dataset.state = text;
  }

  updateStatus() {
    if (!this.source) return;
    const buffered = this.source.buffered || 0;
    this.setStatus(this.paused ? `paused · ${fmtNum(buffered)} waiting (the broker holds the rest)` : `live · ${fmtNum(this.count)} ${this.active ? 'kept by the filter' : 'received'}`);
    this.status.dataset.state = this.paused ? 'paused' : 'live';
  }
}

// ---------------------------------------------------------------------------------------------
// Topic page: numbers, throughput chart, live tail, produce form, partitions, settings

class TopicPage {
  constructor(name) {
    this.name = name;
    this.desc = null;
    this.cards = {};
    const card = (key, label) => h('div', { class: 'card' }, h('div', { class: 'label', text: label }), (this.cards[key] = h('div', { class: 'value', text: '–' })));
    this.badges = h('span', {});
    this.canvas = h('canvas', { id: 'throughput-chart', 'aria-label': `Throughput of ${name}` });
    this.hover = null;
    this.windowMs = app.chartWindowMs;
    this.chartTitle = h('span', {});
    this.windowButtons = [1, 5, 15].map((m) => h('button', { type: 'button', class: 'ghost', 'data-minutes': m, text: `${m}m`, onclick: () => this.setWindow(m * 60000) }));
    this.setWindow(this.windowMs);
    this.canvas.addEventListener('mousemove', (e) => { this.hover = e.offsetX; this.draw(); });
    this.canvas.addEventListener('mouseleave', () => { this.hover = null; this.draw(); });
    this.partsBody = h('tbody', {});
    this.configBody = h('tbody', {});
    this.tail = new Tail(name, this);
    this.produceForm = this.buildProduce();
    this.el = h('section', { id: 'topic-page', 'data-topic': name },
      h('div', { class: 'head' },
        h('h1', {}, h('a', { class: 'crumb', href: '#/topics', text: 'Topics / ' }), name), this.badges,
        h('span', { class: 'spacer' }),
        h('button', { type: 'button', class: 'danger', id: 'delete-topic', onclick: () => deleteTopicDialog(name, () => { location.hash = '#/topics'; }) }, 'Delete topic')),
      h('div', { class: 'cards' },
        card('records', 'Records'), card('size', 'Size on disk'), card('partitions', 'Partitions'),
        card('recIn', 'In, records/s'), card('bytesIn', 'In, bytes/s'), card('recOut', 'Out, records/s')),
      h('div', { class: 'panel' },
        h('h2', {}, this.chartTitle, h('span', { class: 'spacer' }),
          h('span', { class: 'legend' }, h('span', { class: 'in', text: 'produced' }), h('span', { class: 'out', text: 'consumed' })),
          h('span', { class: 'windows', role: 'group', 'aria-label': 'Time window' }, this.windowButtons)),
        h('div', { class: 'body chart' }, this.canvas)),
      h('div', { class: 'split' },
        this.tail.el,
        h('div', { class: 'panel' }, h('h2', {}, 'Produce', h('span', { class: 'spacer' }), h('kbd', { text: 'e' })), h('div', { class: 'body' }, this.produceForm))),
      h('div', { class: 'panel' }, h('h2', { text: 'Partitions' }), h('div', { class: 'table-wrap' }, h('table', { class: 'grid', id: 'partitions-table' },
        h('thead', {}, h('tr', {}, ['Partition', 'Earliest', 'Latest', 'Records', 'Size', 'Segments'].map((t) => h('th', { class: 'num', text: t })))),
        this.partsBody))),
      h('div', { class: 'panel' }, h('details', {}, h('summary', { text: 'Settings' }), h('div', { class: 'table-wrap' }, h('table', { class: 'grid' }, this.configBody)))));
    this.keys = {
      p: () => this.tail.togglePause(),
      x: () => this.tail.clear(),
      e: () => this.produceForm.querySelector('textarea[name="value"]').focus(),
      f: () => this.tail.plugin.focus(),
      d: () => deleteTopicDialog(name, () => { location.hash = '#/topics'; }),
    };
    this.stop = poll(() => this.load(), 2000);
    this.off = app.sampler.on(() => this.update());
    this.onResize = () => this.draw();
    window.addEventListener('resize', this.onResize);
    this.tail.start();
  }

  buildProduce() {
    this.partitionSelect = h('select', { name: 'partition' }, h('option', { value: '', text: 'by key (auto)' }));
    this.result = h('div', { class: 'result', id: 'produce-result' });
    const form = h('form', { class: 'produce', id: 'produce-form' },
      h('label', { class: 'field' }, 'Key', h('input', { name: 'key', placeholder: 'optional', autocomplete: 'off', spellcheck: 'false' })),
      h('label', { class: 'field' }, 'Value', h('textarea', { name: 'value', rows: 6, placeholder: '{"hello": "world"}', spellcheck: 'false' })),
      h('label', { class: 'field' }, 'Headers, one name: value per line', h('textarea', { name: 'headers', rows: 2, placeholder: 'trace: abc', spellcheck: 'false' })),
      h('div', { class: 'row' }, h('label', { class: 'field' }, 'Partition', this.partitionSelect)),
      h('div', { class: 'row' }, h('button', { class: 'primary', type: 'submit' }, 'Send', h('kbd', { text: 'Ctrl ↵' }))),
      this.result);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.send(form);
    });
    form.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        this.send(form);
      }
    });
    return form;
  }

  async send(form) {
    const key = form.key.value;
    const headers = {};
    for (const line of form.headers.value.split('\n')) {
      const i = line.indexOf(':');
      if (line.trim() && i > 0) headers[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    const record = { value: form.value.value, headers };
    if (key) record.key = key;
    if (this.partitionSelect.value !== '') record.partition = Number(this.partitionSelect.value);
    this.result.className = 'result';
    this.result.textContent = 'sending…';
    try {
      const [at] = await app.client.produce(this.name, [record]);
      this.result.className = 'result ok';
      this.result.textContent = `✓ partition ${at.partition}, offset ${at.offset} · ${fmtTime(Date.now())}`;
    } catch (e) {
      this.result.className = 'result bad';
      this.result.textContent = errText(e);
    }
  }

  async load() {
    try {
      this.desc = await app.client.describeTopic(this.name);
    } catch (e) {
      if (e.code === 'unknown_topic') {
        this.el.replaceChildren(h('div', { class: 'banner', text: `Topic ${this.name} does not exist (any more).` }), h('a', { href: '#/topics', text: '← Topics' }));
        this.destroy();
        return;
      }
      throw e;
    }
    const d = this.desc;
    const c = d.configs;
    this.badges.replaceChildren(
      h('span', { class: 'badge', text: `RF ${d.replication_factor}` }), ' ',
      h('span', { class: 'badge', text: c['cleanup.policy'] }), ' ',
      h('span', { class: 'badge', text: `retention ${fmtDuration(c['retention.ms'])}` }));
    const n = d.partitions.length;
    if (this.partitionSelect.options.length !== n + 1) {
      const keep = this.partitionSelect.value;
      this.partitionSelect.replaceChildren(h('option', { value: '', text: 'by key (auto)' }), d.partitions.map((p) => h('option', { value: String(p.partition), text: String(p.partition) })));
      this.partitionSelect.value = keep;
    }
    this.partsBody.replaceChildren(...d.partitions.map((p) => h('tr', {},
      h('td', { class: 'num', text: String(p.partition) }), h('td', { class: 'num', text: fmtNum(p.log_start_offset) }),
      h('td', { class: 'num', text: fmtNum(p.high_watermark) }), h('td', { class: 'num', text: fmtNum(p.high_watermark - p.log_start_offset) }),
      h('td', { class: 'num', text: fmtBytes(p.size_bytes) }), h('td', { class: 'num', text: fmtNum(p.segments) }))));
    if (!this.configBody.children.length) {
      this.configBody.replaceChildren(...Object.entries(c).map(([k, v]) => h('tr', {}, h('td', { class: 'mono', text: k }), h('td', { class: 'mono', text: v }))));
    }
    this.cards.partitions.textContent = fmtNum(n);
    const total = d.partitions.reduce((a, p) => a + (p.high_watermark - p.log_start_offset), 0);
    this.cards.records.textContent = fmtNum(total);
    this.cards.size.textContent = fmtBytes(d.partitions.reduce((a, p) => a + p.size_bytes, 0));
  }

  update() {
    const r = app.sampler.latest(this.name);
    this.cards.recIn.textContent = fmtRate(r.recIn);
    this.cards.bytesIn.textContent = `${fmtBytes(r.bytesIn)}/s`;
    this.cards.recOut.textContent = fmtRate(r.recOut);
    const g = app.sampler.gauges.get(this.name);
    if (g) {
      this.cards.records.textContent = fmtNum(g.log_end_offset - g.log_start_offset);
      this.cards.size.textContent = fmtBytes(g.log_size_bytes);
    }
    this.draw();
  }

  setWindow(ms) {
    this.windowMs = ms;
    app.chartWindowMs = ms;
    this.chartTitle.textContent = `Throughput, last ${ms / 60000} minute${ms === 60000 ? '' : 's'}`;
    for (const b of this.windowButtons) b.setAttribute('aria-pressed', String(Number(b.dataset.minutes) * 60000 === ms));
    this.draw();
  }

  draw() {
    if (!this.canvas.isConnected) return;
    const samples = app.sampler.series.get(this.name) || [];
    drawThroughput(this.canvas, samples, this.windowMs, this.hover);
    const last = samples[samples.length - 1];
    const peak = samples.reduce((a, s) => Math.max(a, s.recIn), 0);
    this.canvas.dataset.samples = String(samples.length);
    this.canvas.dataset.peakRecordsPerSec = String(peak);
    this.canvas.dataset.lastBytesPerSec = String(last ? last.bytesIn : 0);
  }

  mounted() {
    this.update();
  }

  filter(text) {
    this.tail.filter(text);
  }

  destroy() {
    this.stop();
    this.off();
    window.removeEventListener('resize', this.onResize);
    this.tail.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Consumer groups

function stateBadge(state) {
  const cls = state === 'stable' ? 'ok' : state === 'empty' ? '' : 'warn';
  return h('span', { class: `badge ${cls}`, 'data-state': state, text: state });
}

class GroupsPage {
  constructor() {
    this.filterText = '';
    this.groups = [];
    this.tbody = h('tbody', {}, h('tr', {}, h('td', { colspan: 6, class: 'empty', text: 'Loading…' })));
    this.selection = new Selection(this.tbody);
    this.el = h('section', { id: 'groups-page' },
      h('div', { class: 'head' }, h('h1', { text: 'Consumer groups' })),
      h('div', { class: 'panel' }, h('div', { class: 'table-wrap' }, h('table', { class: 'grid', id: 'groups-table' },
        h('thead', {}, h('tr', {}, h('th', { text: 'Group' }), h('th', { text: 'State' }), h('th', { class: 'num', text: 'Members' }),
          h('th', { text: 'Topics' }), h('th', { class: 'num', text: 'Partitions' }), h('th', { class: 'num', text: 'Lag' }))),
        this.tbody))));
    this.stop = poll(() => this.load(), 2000);
  }

  async load() {
    const list = await app.client.listGroups();
    const described = await Promise.all(list.slice(0, 200).map((g) => app.client.describeGroup(g.group).catch(() => null)));
    this.groups = list.map((g, i) => ({ ...g, detail: described[i] }));
    this.render();
  }

  filter(text) {
    this.filterText = text.toLowerCase();
    this.render();
  }

  render() {
    const visible = this.groups.filter((g) => g.group.toLowerCase().includes(this.filterText));
    const selected = this.selection.rows()[this.selection.index]?.dataset.href;
    if (!visible.length) {
      this.tbody.replaceChildren(h('tr', {}, h('td', { colspan: 6, class: 'empty', text: this.groups.length ? 'No group matches the filter.' : 'No consumer groups yet: they appear when a consumer joins one or commits offsets.' })));
      return;
    }
    this.tbody.replaceChildren(...visible.map((g) => {
      const d = g.detail;
      const topics = d ? [...new Set(d.partitions.map((p) => p.topic))] : [];
      const lag = d ? d.partitions.reduce((a, p) => a + p.lag, 0) : null;
      const href = `#/groups/${encodeURIComponent(g.group)}`;
      const tr = h('tr', { 'data-href': href, 'data-group': g.group, 'aria-selected': href === selected ? 'true' : null },
        h('td', {}, h('a', { href, text: g.group })), h('td', {}, stateBadge(g.state)), h('td', { class: 'num', text: fmtNum(g.members) }),
        h('td', {}, topics.map((t) => h('span', { class: 'chip', text: t }))), h('td', { class: 'num', text: d ? fmtNum(d.partitions.length) : '–' }),
        h('td', { class: 'num lag', text: fmtNum(lag) }));
      tr.addEventListener('click', (ev) => { if (ev.target.tagName !== 'A') location.hash = href; });
      return tr;
    }));
  }

  move(d) { this.selection.move(d); }

  open() { this.selection.open(); }

  destroy() { this.stop(); }
}

const short = (id) => (id && id.length > 22 ? `…${id.slice(-12)}` : id || '–');

class GroupPage {
  constructor(name) {
    this.name = name;
    this.filterText = '';
    this.head = h('span', {});
    this.members = h('tbody', {});
    this.parts = h('tbody', {});
    this.totals = h('span', { class: 'badge', id: 'group-total-lag' });
    this.actions = h('span', {});
    this.el = h('section', { id: 'group-page', 'data-group': name },
      h('div', { class: 'head' }, h('h1', {}, h('a', { class: 'crumb', href: '#/groups', text: 'Groups / ' }), name), this.head, h('span', { class: 'spacer' }), this.actions),
      h('div', { class: 'panel' }, h('h2', { text: 'Members' }), h('div', { class: 'table-wrap' }, h('table', { class: 'grid', id: 'members-table' },
        h('thead', {}, h('tr', {}, ['Member', 'Instance', 'Epoch', 'Topics', 'Owns', 'Target'].map((t) => h('th', { text: t })))), this.members))),
      h('div', { class: 'panel' }, h('h2', {}, 'Offsets and lag', h('span', { class: 'spacer' }), this.totals), h('div', { class: 'table-wrap' }, h('table', { class: 'grid', id: 'lag-table' },
        h('thead', {}, h('tr', {}, h('th', { text: 'Topic' }), h('th', { class: 'num', text: 'Partition' }), h('th', { class: 'num', text: 'Committed' }),
          h('th', { class: 'num', text: 'Log end' }), h('th', { class: 'num', text: 'Lag' }), h('th', { text: 'Owner' }))), this.parts))));
    this.stop = poll(() => this.load(), 1000);
  }

  async load() {
    let d;
    try {
      d = await app.client.describeGroup(this.name);
    } catch (e) {
      if (e.code === 'unknown_group') {
        this.head.replaceChildren(h('span', { class: 'badge bad', text: 'unknown group' }));
        this.members.replaceChildren();
        this.parts.replaceChildren();
        return;
      }
      throw e;
    }
    this.d = d;
    this.head.replaceChildren(stateBadge(d.state), ' ', h('span', { class: 'badge', text: `epoch ${d.group_epoch}` }), ' ', h('span', { class: 'badge', text: d.assignor }));
    const chips = (lists) => lists.flatMap((l) => l.partitions.map((p) => h('span', { class: 'chip', text: `${l.topic}/${p}` })));
    this.members.replaceChildren(...(d.members.length ? d.members.map((m) => h('tr', { 'data-member': m.member_id },
      h('td', { class: 'mono', title: m.member_id, text: short(m.member_id) }), h('td', { class: 'mono', text: m.instance_id || '–' }),
      h('td', { class: 'num', text: String(m.member_epoch) }), h('td', {}, m.topics.map((t) => h('span', { class: 'chip', text: t }))),
      h('td', {}, chips(m.assigned)), h('td', {}, chips(m.target)))) : [h('tr', {}, h('td', { colspan: 6, class: 'empty', text: 'No active members.' }))]));
    const maxLag = Math.max(1, ...d.partitions.map((p) => p.lag));
    const visible = d.partitions.filter((p) => p.topic.toLowerCase().includes(this.filterText));
    this.parts.replaceChildren(...(visible.length ? visible.map((p) => {
      const bar = h('span', { class: 'lagbar' });
      bar.style.width = `${Math.round((p.lag / maxLag) * 80)}px`;
      return h('tr', { 'data-topic': p.topic, 'data-partition': p.partition, 'data-lag': p.lag },
        h('td', {}, h('a', { href: `#/topics/${encodeURIComponent(p.topic)}`, text: p.topic })), h('td', { class: 'num', text: String(p.partition) }),
        h('td', { class: 'num', text: p.committed === null || p.committed === undefined ? '–' : fmtNum(p.committed) }),
        h('td', { class: 'num', text: fmtNum(p.log_end_offset) }), h('td', { class: 'num lag' }, fmtNum(p.lag), p.lag ? bar : null),
        h('td', { class: 'mono', title: p.owner || '', text: short(p.owner) }));
    }) : [h('tr', {}, h('td', { colspan: 6, class: 'empty', text: 'No committed offsets or subscribed partitions.' }))]));
    this.totals.textContent = `total lag ${fmtNum(d.partitions.reduce((a, p) => a + p.lag, 0))}`;
    this.renderActions(d);
  }

  renderActions(d) {
    const empty = d.members.length === 0;
    if (this.actions.dataset.empty === String(empty)) return;
    this.actions.dataset.empty = String(empty);
    if (!empty) {
      this.actions.replaceChildren(h('span', { class: 'muted', text: 'Offsets can be reset or deleted once the group has no members.' }));
      return;
    }
    const to = h('select', { 'aria-label': 'Reset to' }, h('option', { value: 'earliest', text: 'to earliest' }), h('option', { value: 'latest', text: 'to latest' }));
    this.actions.replaceChildren(to, ' ',
      h('button', { type: 'button', text: 'Reset offsets', onclick: async () => {
        try {
          await app.client.resetOffsets(this.name, to.value);
          toast(`Offsets of ${this.name} reset ${to.value === 'earliest' ? 'to earliest' : 'to latest'}`);
          this.load();
        } catch (e) { toastError(e, 'Reset offsets'); }
      } }), ' ',
      h('button', { type: 'button', class: 'danger', text: 'Delete group', onclick: async () => {
        if (!window.confirm(`Delete the committed offsets of group ${this.name}?`)) return;
        try {
          await app.client.deleteGroup(this.name);
          toast(`Group ${this.name} deleted`);
          location.hash = '#/groups';
        } catch (e) { toastError(e, 'Delete group'); }
      } }));
  }

  filter(text) {
    this.filterText = text.toLowerCase();
    if (this.d) this.load();
  }

  destroy() { this.stop(); }
}

// ---------------------------------------------------------------------------------------------
// Plugins: the registry over HTTP (/v1/plugins), whose list also names the topics routing with
// each partitioner (`partitioner_of`), and whose PUT takes the chosen File as the body as it is.

/** An HTTP call to the broker's API: the JSON answer, or a thrown `{code, message}` error. */
async function api(method, path, body) {
  const r = await fetch(path, { method, body, cache: 'no-store' });
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch { /* not JSON: reported below */ }
  if (!r.ok) {
    const e = new Error(json && json.message ? json.message : `HTTP ${r.status}: ${text.slice(0, 200)}`);
    e.code = json && json.code ? json.code : `http_${r.status}`;
    throw e;
  }
  return json;
}

async function fetchPlugins() {
  return (await api('GET', '/v1/plugins')).plugins;
}

const shortSha = (sha) => (sha ? `${sha.slice(0, 12)}…` : '–');

function fmtAgo(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(ms).toISOString().slice(0, 10);
}

function healthBadge(p) {
  if (!p.errors) return h('span', { class: 'badge ok', 'data-health': 'ok', text: p.calls ? 'ok' : 'idle' });
  return h('span', { class: 'badge bad', 'data-health': 'failing', title: p.last_error || '', text: `${fmtNum(p.errors)} error${p.errors === 1 ? '' : 's'}` });
}

/** Most topics the broker page describes for its partition leaders (one describe each). */
const MAX_LEADER_TOPICS = 200;

function deletePluginDialog(name, after) {
  openDialog((dlg, close) => {
    const error = h('div', { class: 'error', id: 'delete-plugin-error', role: 'alert' });
    const submit = h('button', { class: 'danger solid', type: 'submit', text: 'Delete plugin', autofocus: true });
    const form = h('form', { class: 'stack' },
      h('p', {}, 'Delete the plugin ', h('strong', { text: name }), '? New subscriptions can no longer attach it; running ones keep their loaded copy until they end. A topic that routes with it must drop it first.'),
      error,
      h('div', { class: 'buttons' }, h('button', { type: 'button', text: 'Cancel', onclick: close }), submit));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      error.textContent = '';
      try {
        await api('DELETE', `/v1/plugins/${encodeURIComponent(name)}`);
        close();
        toast(`Plugin ${name} deleted`);
        after?.();
      } catch (e) {
        error.textContent = errText(e);
        error.dataset.code = e.code;
        submit.disabled = false;
      }
    });
    dlg.append(h('h2', { text: 'Delete plugin' }), form);
  });
}

function pluginDialog(p, topics) {
  openDialog((dlg, close) => {
    dlg.append(
      h('h2', { text: `Plugin ${p.name}` }),
      h('dl', { class: 'meta', id: 'plugin-detail' },
        h('dt', { text: 'kind' }), h('dd', { text: p.kind }),
        h('dt', { text: 'ABI version' }), h('dd', { text: String(p.abi_version) }),
        h('dt', { text: 'size' }), h('dd', { text: `${fmtBytes(p.size_bytes)} (${fmtNum(p.size_bytes)} B)` }),
        h('dt', { text: 'sha256' }), h('dd', { text: p.sha256 }),
        h('dt', { text: 'uploaded' }), h('dd', { text: new Date(p.uploaded_ms).toISOString() }),
        h('dt', { text: 'calls' }), h('dd', { text: fmtNum(p.calls) }),
        h('dt', { text: 'records' }), h('dd', { text: fmtNum(p.records) }),
        h('dt', { text: 'errors' }), h('dd', { text: fmtNum(p.errors) }),
        p.last_error ? [h('dt', { text: 'last error' }), h('dd', { text: p.last_error })] : null,
        h('dt', { text: 'partitioner of' }), h('dd', { text: topics.length ? topics.join(', ') : '–' })),
      h('div', { class: 'buttons' }, h('button', { type: 'button', text: 'Close', onclick: close })));
  });
}

class PluginsPage {
  constructor() {
    this.filterText = '';
    this.plugins = [];
    this.tbody = h('tbody', {}, h('tr', {}, h('td', { colspan: 10, class: 'empty', text: 'Loading…' })));
    this.selection = new Selection(this.tbody);
    this.count = h('span', { class: 'badge' });
    this.name = h('input', { name: 'name', id: 'upload-name', required: true, pattern: '[a-zA-Z0-9._\\-]+', maxlength: 249, placeholder: 'plugin name', autocomplete: 'off', spellcheck: 'false', 'aria-label': 'Plugin name' });
    this.file = h('input', { name: 'file', id: 'upload-file', type: 'file', accept: '.wasm,application/wasm', required: true, 'aria-label': '.wasm module' });
    this.file.addEventListener('change', () => {
      const f = this.file.files[0];
      if (f && !this.name.value) this.name.value = f.name.replace(/\.wasm$/i, '').replace(/[^a-zA-Z0-9._-]/g, '-');
    });
    this.uploadResult = h('span', { class: 'result', id: 'upload-result', role: 'status' });
    this.uploadButton = h('button', { class: 'primary', type: 'submit' }, 'Upload', h('kbd', { text: 'u' }));
    const form = h('form', { class: 'upload', id: 'upload-form' }, this.file, this.name, this.uploadButton, this.uploadResult);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.upload();
    });
    this.el = h('section', { id: 'plugins-page' },
      h('div', { class: 'head' }, h('h1', { text: 'Plugins' }), this.count, h('span', { class: 'spacer' }),
        h('span', { class: 'muted', text: 'WebAssembly filters and partitioners that run in the broker' })),
      h('div', { class: 'panel' }, h('h2', { text: 'Upload a .wasm module' }), h('div', { class: 'body' }, form,
        h('p', { class: 'muted small' }, 'Uploading under an existing name replaces the plugin for new attachments. Attach a filter from a topic\'s live tail; a partitioner with the topic settings ',
          h('code', { text: 'partitioner' }), ' and ', h('code', { text: 'partitioner.param.*' }), '.'))),
      h('div', { class: 'panel' }, h('div', { class: 'table-wrap' }, h('table', { class: 'grid', id: 'plugins-table' },
        h('thead', {}, h('tr', {}, h('th', { text: 'Plugin' }), h('th', { text: 'Kind' }), h('th', { class: 'num', text: 'Size' }), h('th', { text: 'sha256' }),
          h('th', { text: 'Uploaded' }), h('th', { text: 'Partitioner of' }), h('th', { class: 'num', text: 'Calls' }), h('th', { class: 'num', text: 'Records' }),
          h('th', { text: 'Health' }), h('th', {}))),
        this.tbody))));
    this.keys = { u: () => this.file.focus(), d: () => this.deleteSelected() };
    this.stop = poll(() => this.load(), 2000);
  }

  async load() {
    this.plugins = await fetchPlugins();
    this.render();
  }

  async upload() {
    const f = this.file.files[0];
    const name = this.name.value.trim();
    if (!f || !name) {
      this.uploadResult.className = 'result bad';
      this.uploadResult.textContent = !f ? 'choose a .wasm file' : 'name the plugin';
      return;
    }
    this.uploadButton.disabled = true;
    this.uploadResult.className = 'result';
    this.uploadResult.textContent = `uploading ${fmtBytes(f.size)} and compiling…`;
    try {
      const p = await api('PUT', `/v1/plugins/${encodeURIComponent(name)}`, f);
      this.uploadResult.className = 'result ok';
      this.uploadResult.dataset.plugin = p.name;
      this.uploadResult.textContent = `✓ ${p.name}: ${p.kind}, ${fmtBytes(p.size_bytes)}, sha256 ${shortSha(p.sha256)}`;
      this.file.value = '';
      this.name.value = '';
      await this.load();
    } catch (e) {
      this.uploadResult.className = 'result bad';
      this.uploadResult.textContent = errText(e);
    } finally {
      this.uploadButton.disabled = false;
    }
  }

  deleteSelected() {
    const row = this.selection.rows()[this.selection.index];
    if (row) deletePluginDialog(row.dataset.plugin, () => this.load());
  }

  filter(text) {
    this.filterText = text.toLowerCase();
    this.render();
  }

  render() {
    const visible = this.plugins.filter((p) => p.name.toLowerCase().includes(this.filterText));
    this.count.textContent = String(visible.length);
    // Rebuild only when something changed (polls repeat; rows keep focus and selection).
    const key = JSON.stringify([visible, this.plugins.length, Math.floor(Date.now() / 60000)]);
    if (key === this.rendered) return;
    this.rendered = key;
    const selected = this.selection.rows()[this.selection.index]?.dataset.plugin;
    if (!visible.length) {
      this.tbody.replaceChildren(h('tr', {}, h('td', { colspan: 10, class: 'empty' },
        this.plugins.length ? 'No plugin matches the filter.' : ['No plugins yet. Press ', h('kbd', { text: 'u' }), ' to upload a .wasm module.'])));
      return;
    }
    this.tbody.replaceChildren(...visible.map((p) => {
      const topics = p.partitioner_of || [];
      const tr = h('tr', { 'data-href': '', 'data-plugin': p.name, 'aria-selected': p.name === selected ? 'true' : null },
        h('td', {}, h('a', { href: '#/plugins', text: p.name, onclick: (ev) => { ev.preventDefault(); pluginDialog(p, topics); } })),
        h('td', {}, h('span', { class: 'badge', text: p.kind })),
        h('td', { class: 'num', title: `${fmtNum(p.size_bytes)} B`, text: fmtBytes(p.size_bytes) }),
        h('td', { class: 'mono', title: p.sha256, text: shortSha(p.sha256) }),
        h('td', { title: new Date(p.uploaded_ms).toISOString(), text: fmtAgo(p.uploaded_ms) }),
        h('td', { class: 'attachments' }, topics.length ? topics.map((t) => h('a', { class: 'chip', href: `#/topics/${encodeURIComponent(t)}`, text: t })) : h('span', { class: 'muted', text: '–' })),
        h('td', { class: 'num', text: fmtNum(p.calls) }), h('td', { class: 'num', text: fmtNum(p.records) }),
        h('td', { class: 'health' }, healthBadge(p)),
        h('td', { class: 'actions' }, h('button', { class: 'ghost danger', type: 'button', title: 'Delete plugin', text: 'Delete', onclick: (ev) => { ev.stopPropagation(); deletePluginDialog(p.name, () => this.load()); } })));
      tr.addEventListener('click', (ev) => { if (ev.target.tagName !== 'A' && ev.target.tagName !== 'BUTTON') pluginDialog(p, topics); });
      return tr;
    }));
  }

  move(d) { this.selection.move(d); }

  open() {
    const row = this.selection.rows()[this.selection.index];
    const p = row && this.plugins.find((x) => x.name === row.dataset.plugin);
    if (p) pluginDialog(p, p.partitioner_of || []);
  }

  destroy() { this.stop(); }
}

// ---------------------------------------------------------------------------------------------
// Broker page

class BrokerPage {
  constructor() {
    this.cards = {};
    const card = (key, label, small) => h('div', { class: 'card' }, h('div', { class: 'label', text: label }), (this.cards[key] = h('div', { class: `value${small ? ' small' : ''}`, id: `broker-${key}`, text: '–' })));
    this.brokers = h('tbody', {});
    this.leaders = h('tbody', {});
    this.conn = h('dl', { class: 'meta', id: 'connection-info' });
    this.el = h('section', { id: 'broker-page' },
      h('div', { class: 'head' }, h('h1', { text: 'Broker' })),
      h('div', { class: 'cards' },
        card('health', 'Health (/healthz)'), card('ready', 'Readiness (/readyz)'), card('version', 'Version', true),
        card('cluster', 'Cluster', true), card('controller', 'Controller'), card('topics', 'Topics'), card('partitions', 'Partitions'),
        card('size', 'Log size'), card('connections', 'Connections'), card('websockets', 'WebSockets')),
      h('div', { class: 'panel' }, h('h2', { text: 'Brokers' }), h('div', { class: 'table-wrap' }, h('table', { class: 'grid', id: 'brokers-table' },
        h('thead', {}, h('tr', {}, ['Id', 'Address', 'Version', 'Role'].map((t) => h('th', { text: t })))), this.brokers))),
      h('div', { class: 'panel' }, h('h2', { text: 'Partition leaders' }), h('div', { class: 'table-wrap' }, h('table', { class: 'grid', id: 'leaders-table' },
        h('thead', {}, h('tr', {}, h('th', { text: 'Topic' }), h('th', { class: 'num', text: 'Partitions' }), h('th', { text: 'Leader per partition' }))), this.leaders))),
      h('div', { class: 'panel' }, h('h2', { text: 'This console\'s connection' }), h('div', { class: 'body' }, this.conn)));
    this.stop = poll(() => this.load(), 2000);
    this.off = app.sampler.on(() => this.totals());
  }

  async load() {
    const text = async (path) => {
      try {
        const r = await fetch(path, { cache: 'no-store' });
        return { ok: r.ok, body: (await r.text()).trim() };
      } catch (e) {
        return { ok: false, body: 'unreachable' };
      }
    };
    const [health, ready, cluster] = await Promise.all([text('/healthz'), text('/readyz'), fetch('/v1/cluster', { cache: 'no-store' }).then((r) => r.json()).catch(() => null)]);
    const badge = (r) => h('span', { class: `badge ${r.ok ? 'ok' : 'bad'}`, text: r.body || String(r.ok) });
    this.cards.health.replaceChildren(badge(health));
    this.cards.ready.replaceChildren(badge(ready));
    if (cluster) {
      this.cards.cluster.textContent = cluster.cluster_id;
      this.cards.controller.textContent = `broker ${cluster.controller}`;
      const versions = [...new Set(cluster.brokers.map((b) => b.version))];
      this.cards.version.textContent = versions.join(', ');
      this.brokers.replaceChildren(...cluster.brokers.map((b) => h('tr', { 'data-broker': b.id },
        h('td', { class: 'num', text: String(b.id) }), h('td', { class: 'mono', text: b.address }), h('td', { class: 'mono', text: b.version }),
        h('td', {}, b.id === cluster.controller ? h('span', { class: 'badge ok', text: 'controller' }) : h('span', { class: 'badge', text: 'broker' })))));
    }
    await this.loadLeaders(cluster);
    const s = app.client.server || {};
    this.conn.replaceChildren(
      h('dt', { text: 'WebSocket' }), h('dd', { text: app.client.url }),
      h('dt', { text: 'state' }), h('dd', { text: app.client.state }),
      h('dt', { text: 'server' }), h('dd', { text: s.server || '–' }),
      h('dt', { text: 'protocol version' }), h('dd', { text: String(s.version ?? '–') }),
      h('dt', { text: 'max frame' }), h('dd', { text: s.max_frame_bytes ? fmtBytes(s.max_frame_bytes) : '–' }),
      h('dt', { text: 'max in flight' }), h('dd', { text: String(s.max_in_flight ?? '–') }));
    this.totals();
  }

  /**
   * Each partition's leader: the `leader` of the topic description when the broker reports one
   * (a cluster), else — on a single broker — that broker, which leads every partition.
   */
  async loadLeaders(cluster) {
    const topics = (await app.client.listTopics()).slice(0, MAX_LEADER_TOPICS);
    const described = await Promise.all(topics.map((t) => app.client.describeTopic(t.name).catch(() => null)));
    const only = cluster && cluster.brokers.length === 1 ? cluster.brokers[0].id : null;
    const rows = described.filter(Boolean).map((d) => {
      const leaders = d.partitions.map((p) => (p.leader !== undefined && p.leader !== null ? p.leader : only));
      return h('tr', { 'data-topic': d.name },
        h('td', {}, h('a', { href: `#/topics/${encodeURIComponent(d.name)}`, text: d.name })),
        h('td', { class: 'num', text: fmtNum(d.partitions.length) }),
        h('td', {}, d.partitions.map((p, i) => h('span', { class: 'chip', 'data-partition': p.partition, 'data-leader': leaders[i] ?? '', title: `partition ${p.partition}`, text: `P${p.partition} → ${leaders[i] === null ? 'unknown' : `broker ${leaders[i]}`}` }))));
    });
    this.leaders.replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 3, class: 'empty', text: 'No topics.' }))]));
    this.filter(this.filterText || '');
  }

  /** The search box narrows the partition leaders to matching topics. */
  filter(text) {
    this.filterText = text.toLowerCase();
    for (const tr of this.leaders.querySelectorAll('tr[data-topic]')) tr.hidden = !tr.dataset.topic.toLowerCase().includes(this.filterText);
  }

  totals() {
    let topics = 0;
    let partitions = 0;
    let size = 0;
    for (const g of app.sampler.gauges.values()) {
      topics++;
      partitions += g.partitions;
      size += g.log_size_bytes;
    }
    this.cards.topics.textContent = fmtNum(topics);
    this.cards.partitions.textContent = fmtNum(partitions);
    this.cards.size.textContent = fmtBytes(size);
    this.cards.connections.textContent = fmtNum(app.sampler.global.connections);
    this.cards.websockets.textContent = fmtNum(app.sampler.global.websocket_connections);
  }

  destroy() {
    this.stop();
    this.off();
  }
}

// ---------------------------------------------------------------------------------------------
// Router, keyboard, start-up

const app = { client: null, sampler: new Sampler(), view: null, chartWindowMs: 5 * 60 * 1000 };

function route() {
  const hash = location.hash || '#/topics';
  const parts = hash.slice(2).split('/').map(decodeURIComponent);
  if (app.view) app.view.destroy();
  app.view = null;
  let section = parts[0] || 'topics';
  if (section === 'topics' && parts[1]) app.view = new TopicPage(parts[1]);
  else if (section === 'groups' && parts[1]) app.view = new GroupPage(parts[1]);
  else if (section === 'groups') app.view = new GroupsPage();
  else if (section === 'plugins') app.view = new PluginsPage();
  else if (section === 'broker') app.view = new BrokerPage();
  else {
    section = 'topics';
    app.view = new TopicsPage();
  }
  for (const a of document.querySelectorAll('.bar nav a')) a.classList.toggle('active', a.dataset.nav === section);
  document.title = `${parts[1] ? `${parts[1]} · ` : ''}${section[0].toUpperCase()}${section.slice(1)} · Sluice`;
  const search = $('#search');
  search.value = '';
  search.placeholder = section === 'topics' && parts[1] ? 'Filter the live tail' : `Filter ${section}`;
  $('#view').replaceChildren(app.view.el);
  app.view.mounted?.();
}

function isTyping(el) {
  return el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' || el.isContentEditable);
}

let pendingG = null;

function onKey(e) {
  if (e.key === 'Escape') {
    if (isTyping(e.target) && !e.target.closest('dialog')) e.target.blur();
    return; // open dialogs close themselves on Esc
  }
  if (document.querySelector('dialog[open]')) return;
  if (isTyping(e.target) || e.ctrlKey || e.metaKey || e.altKey) return;
  if (pendingG) {
    clearTimeout(pendingG);
    pendingG = null;
    const to = { t: '#/topics', g: '#/groups', p: '#/plugins', b: '#/broker' }[e.key];
    if (to) {
      e.preventDefault();
      location.hash = to;
    }
    return;
  }
  const view = app.view;
  switch (e.key) {
    case 'g':
      pendingG = setTimeout(() => { pendingG = null; }, 1500);
      break;
    case '/':
      e.preventDefault();
      $('#search').focus();
      $('#search').select();
      break;
    case '?':
      $('#help').showModal();
      break;
    case 'j':
    case 'ArrowDown':
      if (view?.move) { e.preventDefault(); view.move(1); }
      break;
    case 'k':
    case 'ArrowUp':
      if (view?.move) { e.preventDefault(); view.move(-1); }
      break;
    case 'Enter':
      if (view?.open && !e.target.closest('button, a, summary')) view.open();
      break;
    default:
      if (view?.keys?.[e.key]) {
        e.preventDefault();
        view.keys[e.key]();
      }
  }
}

async function main() {
  const conn = $('#conn');
  const showState = (s) => {
    conn.dataset.state = s;
    conn.textContent = s === 'open' ? 'connected' : s;
  };
  for (;;) {
    try {
      app.client = await Sluice.connect(undefined, { clientName: 'sluice-console' });
      break;
    } catch (e) {
      showState('closed');
      $('#view').replaceChildren(h('div', { class: 'banner', text: `Cannot reach the broker: ${errText(e)}. Retrying…` }));
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  showState(app.client.state);
  app.client.on('status', showState);
  app.client.on('error', (e) => {
    if (e.code !== 'disconnected') toastError(e);
  });
  app.sampler.start();
  window.addEventListener('hashchange', route);
  document.addEventListener('keydown', onKey);
  $('#search').addEventListener('input', (e) => app.view?.filter?.(e.target.value));
  $('#search').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === 'ArrowDown') {
      e.preventDefault();
      e.target.blur();
      app.view?.move?.(1);
    }
  });
  $('#help-button').addEventListener('click', () => $('#help').showModal());
  route();
  // For tests and debugging from the devtools console.
  window.sluice = app;
}

main();
