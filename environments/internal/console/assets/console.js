// The console's one script: it fills the server-rendered pages from the
// environment's JSON API with the browser's cookie, follows runs live
// (polling GET /runs, the run's event and log streams) and sends the
// console's two actions (start a run, abort one) with the CSRF header.
// No framework, no build step; every text goes in through textContent.
(function () {
  'use strict';
  var body = document.body;
  var API = body.dataset.api || '';
  var BASE = body.dataset.base || '/console';
  var TERMINAL = ['succeeded', 'failed', 'aborted', 'timed_out'];

  // --- helpers

  function el(tag, attrs) {
    var e = document.createElement(tag);
    var a = attrs || {};
    Object.keys(a).forEach(function (k) {
      if (k === 'text') e.textContent = a[k];
      else if (k === 'class') e.className = a[k];
      else if (a[k] !== undefined && a[k] !== null && a[k] !== false) e.setAttribute(k, a[k] === true ? '' : a[k]);
    });
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return e;
  }

  function toLogin() {
    location.assign('/auth/login?next=' + encodeURIComponent(location.pathname + location.search));
  }

  function HTTPError(status, problem) {
    this.status = status;
    this.problem = problem || {};
    this.message = (problem && (problem.detail || problem.title)) || ('HTTP ' + status);
  }

  function request(path, opts) {
    var o = opts || {};
    o.credentials = 'same-origin';
    o.headers = Object.assign({ Accept: 'application/json' }, o.headers || {});
    return fetch(API + path, o).then(function (r) {
      if (r.status === 401) {
        toLogin();
        throw new HTTPError(401);
      }
      return r;
    });
  }

  function getJSON(path) {
    return request(path).then(function (r) {
      if (!r.ok) return r.json().catch(function () { return null; }).then(function (p) { throw new HTTPError(r.status, p); });
      return r.json();
    });
  }

  // post sends a state-changing request: the CSRF header marks it as the
  // console's own (the passthrough middleware checks it with the cookie).
  function post(path, data) {
    var o = { method: 'POST', headers: { 'X-CSRF-Token': '1' } };
    if (data !== undefined) {
      o.headers['Content-Type'] = 'application/json';
      o.body = JSON.stringify(data);
    }
    return request(path, o).then(function (r) {
      return r.json().catch(function () { return null; }).then(function (b) {
        if (!r.ok) throw new HTTPError(r.status, b);
        return b;
      });
    });
  }

  function enc(s) { return encodeURIComponent(s); }
  function runHref(name) { return BASE + '/run/' + enc(name); }

  function duration(ms) {
    if (ms < 0 || isNaN(ms)) return '';
    var s = Math.round(ms / 1000);
    if (s < 60) return s + 's';
    var m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + (s % 60) + 's';
    return Math.floor(m / 60) + 'h ' + (m % 60) + 'm';
  }

  function when(t) {
    if (!t) return '';
    var d = new Date(t);
    return d.toLocaleString();
  }

  function timeEl(t) {
    if (!t) return el('span', { text: '—' });
    return el('time', { datetime: t, text: when(t) });
  }

  function phaseBadge(p) { return el('span', { class: 'phase phase-' + p, text: p.replace(/_/g, ' ') }); }

  function runDuration(r) {
    var now = Date.now();
    if (r.started_at) return duration((r.finished_at ? Date.parse(r.finished_at) : now) - Date.parse(r.started_at));
    var end = r.finished_at ? Date.parse(r.finished_at) : now;
    return 'queued ' + duration(end - Date.parse(r.created_at));
  }

  function progressEl(p) {
    if (!p) return el('span', { class: 'muted', text: '—' });
    var wrap = el('span', { class: 'progress' });
    var bar = el('progress', { 'aria-label': 'Progress' });
    wrap.appendChild(bar);
    wrap.appendChild(el('span', { text: ' ' + progressText(p, bar) }));
    return wrap;
  }

  // progressText sets bar from a progress report (tasks.ProgressReport:
  // done of total, total 0 when unknown) and says it in words.
  function progressText(p, bar) {
    var words = p.total ? Math.round(100 * p.done / p.total) + '% (' + p.done + ' of ' + p.total + ')' : p.done + ' done';
    if (p.total) {
      bar.max = p.total;
      bar.value = p.done;
    } else {
      bar.removeAttribute('value');
    }
    return words + (p.message ? ' · ' + p.message : '');
  }

  function pretty(v) { return v === null || v === undefined ? 'null' : JSON.stringify(v, null, 2); }

  function say(id, text) {
    var e = document.getElementById(id);
    if (e) e.textContent = text;
  }

  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }

  // every calls fn now and then each ms while the page is visible.
  function every(ms, fn) {
    var timer = null;
    function tick() {
      Promise.resolve(fn()).catch(function () {}).then(function () {
        timer = setTimeout(tick, ms);
      });
    }
    document.addEventListener('visibilitychange', function () {
      if (document.hidden) { clearTimeout(timer); timer = null; } else if (!timer) tick();
    });
    tick();
  }

  // --- runs: polls the page shown every 2 s (see README, "Console")

  function runsPage() {
    var form = document.getElementById('filters');
    var tbody = document.querySelector('#runs tbody');
    var cursors = ['']; // cursors of the pages seen; the last is shown
    var next = '';
    var nextBtn = document.getElementById('next');
    var firstBtn = document.getElementById('first');
    var params = new URLSearchParams(location.search);
    ['task', 'phase', 'since'].forEach(function (k) { if (params.get(k)) form.elements[k].value = params.get(k); });
    if (params.get('scope') === 'all' && form.elements.scope) form.elements.scope.value = 'all';

    getJSON('/tasks').then(function (b) {
      var sel = document.getElementById('f-task');
      b.tasks.forEach(function (t) {
        var id = t.project + '/' + t.domain + '/' + t.name;
        sel.appendChild(el('option', { value: id, text: id, selected: params.get('task') === id }));
      });
    }).catch(function () {});

    function query() {
      var q = new URLSearchParams({ limit: '50' });
      var f = form.elements;
      if (f.task.value) q.set('task', f.task.value);
      if (f.phase.value) q.set('phase', f.phase.value);
      if (f.scope && f.scope.value === 'all') q.set('all', 'true');
      // The window moves with each poll: the runs of the last N seconds.
      if (f.since.value) q.set('created_after', new Date(Date.now() - 1000 * Number(f.since.value)).toISOString());
      var c = cursors[cursors.length - 1];
      if (c) q.set('cursor', c);
      return q;
    }

    function load() {
      return getJSON('/runs?' + query().toString()).then(function (b) {
        var shown = b.runs;
        next = b.next_cursor || '';
        clear(tbody);
        shown.forEach(function (r) { tbody.appendChild(runRow(r)); });
        if (!shown.length) tbody.appendChild(el('tr', {}, el('td', { colspan: '8', class: 'muted', text: 'No runs.' })));
        nextBtn.disabled = !next;
        firstBtn.disabled = cursors.length === 1;
        say('live', 'Live: updated ' + new Date().toLocaleTimeString() + ' · ' + shown.length + ' runs on this page');
      }).catch(function (e) { say('live', 'Could not load the runs: ' + e.message); });
    }

    form.addEventListener('change', function () {
      cursors = [''];
      var q = new URLSearchParams();
      ['task', 'phase', 'since'].forEach(function (k) { if (form.elements[k].value) q.set(k, form.elements[k].value); });
      if (form.elements.scope && form.elements.scope.value === 'all') q.set('scope', 'all');
      history.replaceState(null, '', location.pathname + (q.toString() ? '?' + q : ''));
      load();
    });
    form.addEventListener('submit', function (e) { e.preventDefault(); });
    nextBtn.addEventListener('click', function () { if (next) { cursors.push(next); load(); } });
    firstBtn.addEventListener('click', function () { cursors = ['']; load(); });
    every(2000, load);
  }

  function runRow(r) {
    var queue = '—';
    if (!r.done && r.queue_position > 0) queue = '#' + r.queue_position + (r.reason ? ' · ' + r.reason : '');
    else if (r.reason) queue = r.reason;
    return el('tr', { 'data-name': r.name, 'data-phase': r.phase },
      el('td', {}, el('a', { href: runHref(r.name), text: r.name })),
      el('td', { text: r.task }),
      el('td', { class: 'phase-cell' }, phaseBadge(r.phase)),
      el('td', { text: queue }),
      el('td', {}, progressEl(r.progress)),
      el('td', { text: runDuration(r) }),
      el('td', { text: String(r.attempt || 0) }),
      el('td', {}, timeEl(r.created_at)));
  }

  // --- one run: its event and log streams follow it live

  function runPage() {
    var name = body.dataset.run;
    var path = '/run/' + enc(name);
    var abortBtn = document.getElementById('abort');
    var timeline = document.getElementById('timeline');
    var logs = document.getElementById('logs');

    function show(r) {
      var dl = document.getElementById('summary');
      clear(dl);
      var rows = [['Task', r.task], ['Phase', phaseBadge(r.phase)], ['Attempt', String(r.attempt)],
        ['Node', r.node || '—'], ['GPUs', (r.devices || []).join(', ') || '—'],
        ['Created', timeEl(r.created_at)], ['Started', timeEl(r.started_at)], ['Finished', timeEl(r.finished_at)],
        ['Duration', runDuration(r)]];
      if (!r.done && r.queue_position > 0) rows.push(['Queue position', String(r.queue_position)]);
      if (r.reason) rows.push(['Waiting because', r.reason]);
      if (r.error) rows.push(['Error', r.error]);
      rows.forEach(function (p) {
        dl.appendChild(el('dt', { text: p[0] }));
        dl.appendChild(el('dd', {}, typeof p[1] === 'string' ? document.createTextNode(p[1]) : p[1]));
      });
      dl.dataset.phase = r.phase;
      showProgress(r.progress);
      abortBtn.hidden = r.done;
      var at = document.querySelector('#attempts tbody');
      clear(at);
      r.attempts.forEach(function (a) {
        var why = a.error || (a.interrupted ? 'interrupted by the platform' : (TERMINAL.indexOf(a.phase) >= 0 ? a.phase : ''));
        at.appendChild(el('tr', {},
          el('td', { text: String(a.number) }), el('td', { text: a.node || '—' }),
          el('td', { text: (a.devices || []).join(', ') || '—' }), el('td', {}, phaseBadge(a.phase)),
          el('td', {}, timeEl(a.started_at)), el('td', {}, timeEl(a.finished_at)), el('td', { text: why })));
      });
      var dt = document.querySelector('#deliveries tbody');
      clear(dt);
      (r.deliveries || []).forEach(function (d) {
        dt.appendChild(el('tr', {}, el('td', { text: d.event }), el('td', { text: d.url }), el('td', { text: d.state }),
          el('td', { text: String(d.attempts.length) })));
      });
      if (!(r.deliveries || []).length) dt.appendChild(el('tr', {}, el('td', { colspan: '4', class: 'muted', text: 'No webhook for this run.' })));
    }

    function showProgress(p) {
      var bar = document.getElementById('progress');
      if (!p) { bar.removeAttribute('value'); say('progress-text', 'no progress reported'); return; }
      say('progress-text', progressText(p, bar));
    }

    function refresh() {
      return getJSON(path).then(show).then(function () {
        return getJSON(path + '/io');
      }).then(function (io) {
        document.getElementById('inputs').textContent = pretty(io.inputs);
        document.getElementById('outputs').textContent = pretty(io.outputs);
      });
    }

    refresh().then(function () {
      var events = new EventSource(API + path + '/events');
      events.addEventListener('phase', function (m) {
        var ev = JSON.parse(m.data);
        timeline.appendChild(el('li', {}, timeEl(ev.at), ' ', phaseBadge(ev.phase), ev.error ? ' — ' + ev.error : ''));
        if (TERMINAL.indexOf(ev.phase) >= 0) events.close();
        refresh();
      });
      events.addEventListener('progress', function (m) { showProgress(JSON.parse(m.data)); });
      var lines = new EventSource(API + path + '/logs?follow=1');
      lines.addEventListener('log', function (m) {
        var l = JSON.parse(m.data);
        var stick = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
        logs.appendChild(el('div', { class: 'line stream-' + l.stream, 'data-stream': l.stream },
          el('span', { class: 'ts', text: new Date(l.time).toLocaleTimeString() }), ' ',
          el('span', { class: 'tag', text: l.stream === 'log' ? l.level : l.stream }), ' ',
          l.message + (l.attrs ? ' ' + JSON.stringify(l.attrs) : '')));
        if (stick) logs.scrollTop = logs.scrollHeight;
      });
      lines.addEventListener('end', function () { lines.close(); });
    }).catch(function (e) { say('abort-status', 'Could not load the run: ' + e.message); });

    abortBtn.addEventListener('click', function () {
      abortBtn.disabled = true;
      post(path + '/abort').then(function () {
        say('abort-status', 'Abort requested.');
        refresh();
      }).catch(function (e) {
        say('abort-status', 'Abort refused: ' + e.message);
      }).then(function () { abortBtn.disabled = false; });
    });
  }

  // --- tasks: a form per task, built from its input schema

  function tasksPage() {
    var root = document.getElementById('tasks');
    getJSON('/tasks').then(function (b) {
      if (!b.tasks.length) root.appendChild(el('p', { text: 'This environment allows no task.' }));
      return Promise.all(b.tasks.map(function (t) {
        return getJSON('/task/' + enc(t.project) + '/' + enc(t.domain) + '/' + enc(t.name));
      }));
    }).then(function (ds) {
      (ds || []).forEach(function (d) { root.appendChild(taskCard(d)); });
    }).catch(function (e) { root.appendChild(el('p', { text: 'Could not load the tasks: ' + e.message })); });
  }

  function taskCard(d) {
    var id = d.project + '/' + d.domain + '/' + d.name;
    var slug = id.replace(/[^a-z0-9]/g, '-');
    var res = Object.keys(d.resources || {}).map(function (k) { return k + ' ' + d.resources[k]; }).join(', ') || 'none';
    var card = el('section', { class: 'card', id: 'task-' + slug, 'aria-labelledby': 'h-' + slug },
      el('h2', { id: 'h-' + slug, text: id }),
      d.description ? el('p', { text: d.description }) : null,
      el('p', { class: 'meta', text: 'Resources: ' + res + ' · timeout ' + d.timeout + ' · up to ' + d.retry.max_attempts + ' attempts · version ' + d.version }),
      el('details', {}, el('summary', { text: 'Input schema' }), el('pre', { tabindex: '0', text: pretty(d.input_schema) })),
      el('details', {}, el('summary', { text: 'Output schema' }), el('pre', { tabindex: '0', text: pretty(d.output_schema) })));
    card.appendChild(taskForm(d, id, slug));
    return card;
  }

  function schemaProps(s) {
    var props = (s && s.properties) || {};
    return Object.keys(props).map(function (k) { return { name: k, s: props[k], required: (s.required || []).indexOf(k) >= 0 }; });
  }

  function taskForm(d, id, slug) {
    var form = el('form', { class: 'run-form', novalidate: true, 'data-task': id });
    var fields = schemaProps(d.input_schema);
    fields.forEach(function (f) {
      var fid = slug + '-' + f.name;
      var t = Array.isArray(f.s.type) ? f.s.type.filter(function (x) { return x !== 'null'; })[0] : f.s.type;
      var input;
      if (f.s.enum) {
        input = el('select', { id: fid, name: f.name });
        if (!f.required) input.appendChild(el('option', { value: '', text: '—' }));
        f.s.enum.forEach(function (v) { input.appendChild(el('option', { value: String(v), text: String(v), selected: v === f.s.default })); });
      } else if (t === 'boolean') {
        input = el('input', { id: fid, name: f.name, type: 'checkbox', checked: f.s.default === true });
      } else if (t === 'integer' || t === 'number') {
        input = el('input', { id: fid, name: f.name, type: 'number', step: t === 'integer' ? '1' : 'any',
          min: f.s.minimum, max: f.s.maximum, value: f.s.default !== undefined ? String(f.s.default) : undefined });
      } else if (t === 'object' || t === 'array') {
        input = el('textarea', { id: fid, name: f.name, rows: '3', placeholder: t === 'array' ? '[ ]' : '{ }' });
        if (f.s.default !== undefined) input.value = JSON.stringify(f.s.default);
      } else {
        input = el('input', { id: fid, name: f.name, type: 'text', value: f.s.default !== undefined ? String(f.s.default) : undefined });
      }
      input.dataset.type = t || 'string';
      input.setAttribute('aria-describedby', fid + '-err' + (f.s.description ? ' ' + fid + '-hint' : ''));
      if (f.required) input.setAttribute('aria-required', 'true');
      form.appendChild(el('div', { class: 'field', 'data-field': f.name },
        el('label', { for: fid }, f.name, f.required ? el('span', { class: 'req', 'aria-hidden': 'true', text: ' *' }) : null),
        input,
        f.s.description ? el('small', { id: fid + '-hint', text: f.s.description }) : null,
        el('span', { class: 'error', id: fid + '-err', 'aria-live': 'polite' })));
    });
    if (!fields.length) form.appendChild(el('p', { class: 'muted', text: 'This task takes no inputs.' }));
    var result = el('p', { class: 'result', role: 'status', 'aria-live': 'polite' });
    form.appendChild(el('button', { type: 'submit', text: 'Start run' }));
    form.appendChild(result);
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      form.querySelectorAll('.error').forEach(function (x) { x.textContent = ''; });
      form.querySelectorAll('[aria-invalid]').forEach(function (x) { x.removeAttribute('aria-invalid'); });
      var data = {};
      var bad = false;
      fields.forEach(function (f) {
        var input = form.elements[f.name];
        var v = input.value;
        switch (input.dataset.type) {
          case 'boolean': data[f.name] = input.checked; return;
          case 'integer': case 'number': if (v !== '') data[f.name] = Number(v); return;
          case 'object': case 'array':
            if (v.trim() === '') return;
            try { data[f.name] = JSON.parse(v); } catch (err) { fieldError(form, f.name, 'not valid JSON'); bad = true; }
            return;
          default: if (v !== '' || f.required) data[f.name] = v;
        }
      });
      if (bad) return;
      result.textContent = 'Starting…';
      post('/run-task/' + id.split('/').map(enc).join('/'), data).then(function (b) {
        clear(result);
        result.appendChild(document.createTextNode('Started run '));
        result.appendChild(el('a', { href: runHref(b.name), text: b.name }));
        result.appendChild(document.createTextNode(' (' + b.phase + '). '));
        result.appendChild(el('a', { href: BASE + '/runs', text: 'See the runs' }));
      }).catch(function (err) {
        result.textContent = 'Not started: ' + err.message;
        (err.problem.errors || []).forEach(function (x) {
          var loc = (x.location || '').replace(/^body\.?/, '');
          var field = loc.split(/[.[]/)[0];
          if (!fieldError(form, field, x.message)) result.textContent += ' · ' + (loc || 'body') + ': ' + x.message;
        });
      });
    });
    return form;
  }

  function fieldError(form, name, msg) {
    var f = form.querySelector('[data-field="' + CSS.escape(name) + '"]');
    if (!name || !f) return false;
    var input = form.elements[name];
    input.setAttribute('aria-invalid', 'true');
    f.querySelector('.error').textContent = msg;
    return true;
  }

  // --- nodes and GPUs (admin group: the API says 403 to others)

  function bytes(n) {
    if (!n) return '—';
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (Math.round(n * 10) / 10) + ' ' + u[i];
  }

  function nodesPage() {
    var root = document.getElementById('nodes');
    every(3000, function () {
      return getJSON('/nodes').then(function (b) {
        clear(root);
        if (!b.nodes.length) root.appendChild(el('p', { text: 'No node has registered.' }));
        b.nodes.forEach(function (n) { root.appendChild(nodeCard(n)); });
        say('live', 'Live: updated ' + new Date().toLocaleTimeString());
      }).catch(function (e) {
        say('live', e.status === 403 ? 'Nodes are shown to the admin group only.' : 'Could not load the nodes: ' + e.message);
      });
    });
  }

  function nodeCard(n) {
    var stale = !n.healthy;
    var card = el('section', { class: 'card node' + (stale ? ' stale' : ''), 'data-node': n.id },
      el('h2', {}, n.id + ' ', stale ? el('span', { class: 'phase phase-failed', text: 'stale: no heartbeat since ' + when(n.last_heartbeat) })
        : el('span', { class: 'phase phase-succeeded', text: 'healthy' })),
      el('p', { class: 'meta', text: 'CPU ' + ((n.milli_cpu - n.free_milli_cpu) / 1000) + ' of ' + (n.milli_cpu / 1000) +
        ' allocated · memory ' + bytes(n.memory_bytes - n.free_memory_bytes) + ' of ' + bytes(n.memory_bytes) +
        ' allocated · last heartbeat ' + when(n.last_heartbeat) }));
    var t = el('table', { class: 'devices' },
      el('caption', { text: 'Devices of ' + n.id }),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'Index' }), el('th', { scope: 'col', text: 'Type' }),
        el('th', { scope: 'col', text: 'MIG profile' }), el('th', { scope: 'col', text: 'Memory' }),
        el('th', { scope: 'col', text: 'Healthy' }), el('th', { scope: 'col', text: 'Held by' }))));
    var tb = el('tbody');
    (n.devices || []).forEach(function (d) {
      tb.appendChild(el('tr', { 'data-type': d.type, 'data-run': d.run || '' },
        el('td', { text: d.mig ? d.parent + '/' + d.index : String(d.index) }), el('td', { text: d.type }),
        el('td', { text: d.mig || '—' }), el('td', { text: bytes(d.memory_bytes) }),
        el('td', { text: d.healthy ? 'yes' : 'no' }),
        el('td', {}, d.run ? el('a', { href: runHref(d.run), text: d.run }) : el('span', { class: 'muted', text: 'free' }))));
    });
    if (!(n.devices || []).length) tb.appendChild(el('tr', {}, el('td', { colspan: '6', class: 'muted', text: 'No GPU.' })));
    t.appendChild(tb);
    card.appendChild(t);
    if ((n.runs || []).length) {
      var p = el('p', { class: 'meta' }, 'Runs bound here: ');
      n.runs.forEach(function (r, i) { if (i) p.appendChild(document.createTextNode(', ')); p.appendChild(el('a', { href: runHref(r), text: r })); });
      card.appendChild(p);
    }
    return card;
  }

  // --- queue

  function queuePage() {
    var root = document.getElementById('queue');
    var tbody = document.querySelector('#waiting tbody');
    var all = body.dataset.admin ? '&all=true' : '';
    every(3000, function () {
      var summary = getJSON('/queue').then(function (q) {
        clear(root);
        var counts = Object.keys(q.runs).map(function (p) { return p.replace(/_/g, ' ') + ' ' + q.runs[p]; }).join(' · ') || 'no active run';
        root.appendChild(el('p', { text: 'Active runs: ' + counts }));
        var s = q.scheduler;
        if (!s) { root.appendChild(el('p', { class: 'muted', text: 'The scheduler runs in another process; positions and reasons are its own.' })); return; }
        root.appendChild(el('p', { text: s.waiting + ' waiting · ' + s.bound + ' placed · ' + s.reserved_nodes + ' nodes reserved for big runs' }));
        var pt = el('table', { id: 'projects' }, el('caption', { text: 'By project (GPU quotas in use)' }),
          el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'Project' }), el('th', { scope: 'col', text: 'Waiting' }),
            el('th', { scope: 'col', text: 'Placed' }), el('th', { scope: 'col', text: 'GPUs in use' }), el('th', { scope: 'col', text: 'GPU quota' }))));
        var ptb = el('tbody');
        (s.projects || []).forEach(function (p) {
          ptb.appendChild(el('tr', {}, el('td', { text: p.project }), el('td', { text: String(p.waiting) }), el('td', { text: String(p.bound) }),
            el('td', { text: String(p.gpus_in_use) }), el('td', { text: p.gpu_quota ? String(p.gpu_quota) : 'none' })));
        });
        pt.appendChild(ptb);
        root.appendChild(pt);
        var rt = el('table', { id: 'reasons' }, el('caption', { text: 'Why runs wait' }),
          el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'Reason' }), el('th', { scope: 'col', text: 'Runs' }))));
        var rtb = el('tbody');
        (s.reasons || []).forEach(function (r) { rtb.appendChild(el('tr', {}, el('td', { text: r.reason }), el('td', { text: String(r.runs) }))); });
        if (!(s.reasons || []).length) rtb.appendChild(el('tr', {}, el('td', { colspan: '2', class: 'muted', text: 'Nothing waits.' })));
        rt.appendChild(rtb);
        root.appendChild(rt);
      }).catch(function (e) {
        clear(root);
        if (e.status === 403) root.appendChild(el('p', { class: 'muted', text: 'The queue summary is shown to the admin group; below are your waiting runs.' }));
      });
      var waiting = getJSON('/runs?limit=200&phase=queued,waiting_for_resources' + all).then(function (b) {
        clear(tbody);
        b.runs.sort(function (x, y) { return (x.queue_position || 1e9) - (y.queue_position || 1e9); });
        b.runs.forEach(function (r) {
          tbody.appendChild(el('tr', { 'data-name': r.name },
            el('td', { text: r.queue_position ? String(r.queue_position) : '—' }),
            el('td', {}, el('a', { href: runHref(r.name), text: r.name })), el('td', { text: r.task }),
            el('td', {}, phaseBadge(r.phase)), el('td', { text: r.reason || '—' }),
            el('td', { text: duration(Date.now() - Date.parse(r.created_at)) })));
        });
        if (!b.runs.length) tbody.appendChild(el('tr', {}, el('td', { colspan: '6', class: 'muted', text: 'No waiting run.' })));
      });
      return Promise.all([summary, waiting]).then(function () { say('live', 'Live: updated ' + new Date().toLocaleTimeString()); });
    });
  }

  // Charts are SVG images the server draws; they are reloaded every 15 s.
  function refreshCharts() {
    var imgs = document.querySelectorAll('img.chart');
    if (!imgs.length) return;
    // A chart the caller may not see (403) is hidden, not shown broken.
    imgs.forEach(function (img) {
      img.addEventListener('error', function () { img.hidden = true; });
      if (img.complete && !img.naturalWidth) img.hidden = true;
    });
    setInterval(function () {
      if (document.hidden) return;
      imgs.forEach(function (img) { img.src = BASE + '/charts/' + img.dataset.chart + '.svg?t=' + Date.now(); });
    }, 15000);
  }

  var pages = { runs: runsPage, run: runPage, tasks: tasksPage, nodes: nodesPage, queue: queuePage };
  if (pages[body.dataset.page]) pages[body.dataset.page]();
  refreshCharts();
})();
