/*
 * Two admin/engineer tools of issue 15 that live outside app.js:
 *
 * Alert subscriptions (admins only; docs/alerts.md, api/routes_alerts.py):
 *   GET    /v1/alerts/subscriptions          the list (targets without their query values, secrets never)
 *   POST   /v1/alerts/subscriptions          create: channel webhook|wecom|dingtalk|email, target, secret (webhook
 *                                            HMAC key, made by Skylane when omitted and answered ONCE; DingTalk
 *                                            signing secret), kinds, zone_ids, uav_ids, owners, language
 *   DELETE /v1/alerts/subscriptions/{id}
 *   GET    /v1/alerts/deliveries[?status=]   recent deliveries, newest first
 * A one-row panel in the side column (count, failures, "manage") opens the dialog (#subs-dialog): the list with
 * delete (click twice), the form, the deliveries. The API's errors are shown in the dialog as it says them (in
 * the page's language: requests carry Accept-Language).
 *
 * Incident report (engineers, admins; api/routes_reports.py): the replay panel's button fetches
 * GET /v1/recordings/{name}/report for the selected recording with the key and the page's language and opens
 * the HTML page in a new tab (a blob: URL; a download link stays in the panel, also for blocked pop-ups).
 *
 * app.js calls SkylaneAlertSubscriptions.start(me) once signed in.
 */
(function () {
  'use strict';
  var SK, T = I18N.t;
  var ADMIN = { admin: true };
  var REPORT_ROLES = { engineer: true, admin: true };
  var CHANNELS = ['webhook', 'wecom', 'dingtalk', 'email'];
  var SECRET = { webhook: 'optional', dingtalk: 'optional' };   // channels that take a secret
  var REFRESH_MS = 10000, SUMMARY_MS = 60000, ARM_MS = 4000, BLOB_MS = 10 * 60000;
  var st = { items: [], open: false, timer: 0, summaryTimer: 0, armed: null, armTimer: 0 };
  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text, parent) { return SK.htmlEl(tag, cls, text, parent); }
  function when(ts) { return ts ? I18N.dateTime(SK.parseTs(ts)) : '—'; }

  // what went wrong, as the API said it (a string detail is already in the page's language)
  function problem(err) {
    var d = err && err.detail;
    if (typeof d === 'string' && d) return d;
    if (Array.isArray(d) && d.length) {   // request validation: field and message
      return d.map(function (e) {
        var loc = (e.loc || []).filter(function (p) { return p !== 'body'; }).join('.');
        return (loc ? loc + ': ' : '') + (e.msg || '');
      }).join('; ');
    }
    return (err && err.message) || String(err);
  }
  function showError(text) {
    var box = $('subs-error');
    box.textContent = text || '';
    box.hidden = !text;
  }

  // ------------------------------------------------------------ the form
  function kindsFromCatalogue() {   // every event kind has its label 'kind.<kind>' in the page catalogue
    var keys = Object.keys(I18N.fallback).length ? Object.keys(I18N.fallback) : Object.keys(I18N.cat);
    return keys.filter(function (k) { return k.indexOf('kind.') === 0; }).map(function (k) { return k.slice(5); });
  }
  function buildKinds() {
    var box = $('subs-kinds');
    box.textContent = '';
    var kinds = kindsFromCatalogue();
    var groups = [['subs.kinds_airspace', kinds.filter(function (k) { return k.indexOf('sensor_') !== 0; })],
                  ['subs.kinds_sensor', kinds.filter(function (k) { return k.indexOf('sensor_') === 0; })]];
    groups.forEach(function (g) {
      if (!g[1].length) return;
      el('div', 'subs-kinds-group muted small', T(g[0]), box);
      var grid = el('div', 'subs-kinds-grid', null, box);
      g[1].forEach(function (k) {
        var lab = el('label', 'small', null, grid);
        lab.title = k;
        var cb = el('input', null, null, lab);
        cb.type = 'checkbox'; cb.name = 'kind'; cb.value = k;
        el('span', null, T('kind.' + k), lab);
      });
    });
  }
  function channelChanged() {
    var ch = $('subs-channel').value;
    $('subs-target').placeholder = T('subs.target_placeholder_' + ch);
    $('subs-target').type = ch === 'email' ? 'text' : 'url';
    $('subs-target-hint').textContent = T('subs.target_hint_' + ch);
    var takes = !!SECRET[ch];
    $('subs-secret-wrap').hidden = !takes;
    $('subs-secret-hint').hidden = !takes;
    $('subs-secret-input').disabled = !takes;
    if (!takes) $('subs-secret-input').value = '';
    if (takes) {
      $('subs-secret-label').textContent = T('subs.secret_' + ch);
      $('subs-secret-hint').textContent = T('subs.secret_hint_' + ch);
    }
  }
  function list(value, commas) {   // ids: commas, Chinese commas or spaces; owners (names with spaces): commas only
    var sep = commas ? /[,，、;；\n]+/ : /[\s,，、;；]+/;
    return String(value || '').split(sep).map(function (s) { return s.trim(); }).filter(Boolean);
  }
  function formBody() {
    var ch = $('subs-channel').value;
    var body = {
      name: $('subs-name').value.trim(), channel: ch, target: $('subs-target').value.trim(),
      language: $('subs-language').value,
      kinds: Array.prototype.map.call(document.querySelectorAll('#subs-kinds input[name=kind]:checked'),
        function (cb) { return cb.value; }),
      zone_ids: list($('subs-zones').value), uav_ids: list($('subs-uavs').value), owners: list($('subs-owners').value, true)
    };
    var secret = $('subs-secret-input').value.trim();
    if (SECRET[ch] && secret) body.secret = secret;
    return body;
  }
  function resetForm() {
    ['subs-name', 'subs-target', 'subs-secret-input', 'subs-zones', 'subs-uavs', 'subs-owners'].forEach(function (id) { $(id).value = ''; });
    Array.prototype.forEach.call(document.querySelectorAll('#subs-kinds input[name=kind]'), function (cb) { cb.checked = false; });
  }
  function create(ev) {
    ev.preventDefault();
    showError('');
    var body = formBody();
    $('subs-submit').disabled = true;
    SK.api('POST', '/v1/alerts/subscriptions', body).then(function (sub) {
      $('subs-secret-input').value = '';   // a DingTalk secret does not stay in the page
      if (sub && sub.secret) showSecret(sub);
      resetForm();
      return refresh();
    }).catch(function (err) {
      showError(T('subs.create_failed', { why: problem(err) }));
    }).then(function () { $('subs-submit').disabled = false; });
  }
  function showSecret(sub) {   // the webhook key Skylane made: answered only in the creation's reply
    $('subs-secret-value').textContent = sub.secret;
    $('subs-secret-for').textContent = T('subs.secret_for', { name: sub.name, target: sub.target });
    $('subs-secret').hidden = false;
    $('subs-secret').setAttribute('data-sub-id', sub.id);
  }
  function hideSecret() {
    $('subs-secret-value').textContent = '';
    $('subs-secret-for').textContent = '';
    $('subs-secret').removeAttribute('data-sub-id');
    $('subs-secret').hidden = true;
  }
  function copySecret() {
    var text = $('subs-secret-value').textContent;
    var done = function () { $('subs-secret-copy').textContent = T('subs.copied'); };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, selectSecret);
    } else selectSecret();
  }
  function selectSecret() {   // no clipboard (plain http): select the text for Ctrl+C
    var range = document.createRange();
    range.selectNodeContents($('subs-secret-value'));
    var sel = window.getSelection();
    sel.removeAllRanges(); sel.addRange(range);
  }

  // ------------------------------------------------------------ the list
  function summaryOf(sub) {
    var parts = [], sep = T('subs.sep');
    parts.push(sub.kinds.length ? sub.kinds.map(function (k) { return I18N.has('kind.' + k) ? T('kind.' + k) : k; }).join(sep)
      : T('subs.any_kind'));
    parts.push(sub.zone_ids.length ? T('subs.zones_are', { ids: sub.zone_ids.join(sep) }) : T('subs.any_zone'));
    var fleet = sub.uav_ids.concat(sub.owners);
    parts.push(fleet.length ? T('subs.fleet_is', { ids: fleet.join(sep) }) : T('subs.any_device'));
    return parts.join(' · ');
  }
  function renderList(items) {
    st.items = items;
    var ol = $('subs-list');
    ol.textContent = '';
    items.forEach(function (s) {
      var li = el('li', 'sub' + (s.enabled ? '' : ' disabled'), null, ol);
      li.setAttribute('data-sub-id', s.id);
      li.setAttribute('data-channel', s.channel);
      var head = el('div', 'sub-head', null, li);
      el('span', 'sub-name', s.name, head);
      el('span', 'sub-channel ch-' + s.channel, T('subs.channel_' + s.channel), head);
      if (s.has_secret) el('span', 'sub-flag', T('subs.signed'), head).title = T('subs.signed_title');
      if (!s.enabled) el('span', 'sub-flag off', T('subs.disabled'), head);
      var del = el('button', 'sub-delete', T('subs.delete'), head);
      del.type = 'button'; del.setAttribute('data-action', 'delete');
      el('div', 'sub-target mono small', s.target, li);
      el('div', 'sub-filter small', summaryOf(s), li);
      var c = s.deliveries || { pending: 0, delivered: 0, failed: 0 };
      var foot = el('div', 'sub-foot muted small', null, li);
      var counts = el('span', 'sub-counts' + (c.failed ? ' has-failed' : ''), T('subs.counts', c), foot);
      counts.setAttribute('data-failed', c.failed);
      el('span', null, T('subs.lang_' + s.language), foot);
      el('span', null, T('subs.created', { at: when(s.created_at), by: s.created_by || '—' }), foot);
    });
    $('subs-empty').hidden = items.length > 0;
    $('subs-count').textContent = items.length ? '(' + items.length + ')' : '';
    summary(items);
  }
  function summary(items) {
    var failed = items.reduce(function (n, s) { return n + ((s.deliveries && s.deliveries.failed) || 0); }, 0);
    var text = T('subs.summary', { n: items.length });
    if (failed) text += ' · ' + T('subs.summary_failed', { n: failed });
    $('subs-summary').textContent = text;
    $('subs-summary').classList.toggle('warn', failed > 0);
  }
  function loadList() {
    return SK.api('GET', '/v1/alerts/subscriptions').then(function (r) { renderList((r && r.items) || []); });
  }
  function remove(li, button) {
    var id = li.getAttribute('data-sub-id');
    if (st.armed !== id) {   // the first click arms, the second within a few seconds deletes
      disarm();
      st.armed = id;
      button.textContent = T('subs.delete_confirm');
      button.classList.add('armed');
      st.armTimer = setTimeout(disarm, ARM_MS);
      return;
    }
    disarm();
    button.disabled = true;
    showError('');
    SK.api('DELETE', '/v1/alerts/subscriptions/' + encodeURIComponent(id)).then(function () {
      if ($('subs-secret').getAttribute('data-sub-id') === id) hideSecret();
      return refresh();
    }).catch(function (err) {
      button.disabled = false;
      showError(T('subs.delete_failed', { why: problem(err) }));
    });
  }
  function disarm() {
    clearTimeout(st.armTimer);
    st.armed = null;
    Array.prototype.forEach.call(document.querySelectorAll('#subs-list button.sub-delete.armed'), function (b) {
      b.classList.remove('armed'); b.textContent = T('subs.delete');
    });
  }

  // ------------------------------------------------------------ deliveries
  function deliveryDetail(d) {
    if (d.status === 'delivered') return T('subs.delivered_at', { at: when(d.delivered_at) });
    if (d.status === 'failed') return T('subs.failed_at', { at: when(d.failed_at) });
    return d.next_attempt ? T('subs.next_attempt', { at: when(d.next_attempt) }) : '';
  }
  function renderDeliveries(items) {
    var tb = $('subs-deliveries').tBodies[0];
    tb.textContent = '';
    items.forEach(function (d) {
      var tr = el('tr', 'delivery status-' + d.status, null, tb);
      tr.setAttribute('data-status', d.status);
      tr.setAttribute('data-subscription-id', d.subscription_id);
      tr.setAttribute('data-event-id', d.event_id);
      el('td', 'mono', when(d.created), tr);
      var sub = el('td', null, d.subscription_name, tr);
      sub.title = T('subs.channel_' + d.channel);
      var kind = el('td', null, I18N.has('kind.' + d.kind) ? T('kind.' + d.kind) : d.kind, tr);
      kind.title = d.kind + ' · ' + when(d.event_ts) + (d.digest_id ? ' · ' + T('subs.in_digest') : '');
      el('td', 'd-status', T('subs.status_' + d.status), tr);
      el('td', 'num', String(d.attempts), tr);
      var info = el('td', 'd-detail', deliveryDetail(d), tr);
      if (d.last_error) el('div', 'd-error', d.last_error, info);
    });
    $('subs-del-empty').hidden = items.length > 0;
  }
  function loadDeliveries() {
    var status = $('subs-del-status').value;
    return SK.api('GET', '/v1/alerts/deliveries?limit=50' + (status ? '&status=' + status : ''))
      .then(function (r) { renderDeliveries((r && r.items) || []); });
  }

  function refresh() {
    clearTimeout(st.timer);
    var p = Promise.all([loadList(), st.open ? loadDeliveries() : null]).catch(function (err) {
      showError(T('subs.load_failed', { why: problem(err) }));
    });
    if (st.open) st.timer = setTimeout(refresh, REFRESH_MS);
    return p;
  }
  function refreshSummary() {   // the side panel's line, while the dialog is closed
    clearTimeout(st.summaryTimer);
    if (!st.open) {
      loadList().catch(function (err) {
        $('subs-summary').textContent = T('subs.load_failed', { why: problem(err) });
      });
    }
    st.summaryTimer = setTimeout(refreshSummary, SUMMARY_MS);
  }
  function openDialog() {
    st.open = true;
    $('subs-dialog').hidden = false;
    document.body.classList.add('subs-open');
    refresh();
    $('subs-name').focus();
  }
  function closeDialog() {
    st.open = false;
    clearTimeout(st.timer);
    disarm();
    $('subs-dialog').hidden = true;
    document.body.classList.remove('subs-open');
    $('subs-open').focus();
  }

  function startSubscriptions() {
    $('subs-panel').hidden = false;
    buildKinds();
    $('subs-language').value = I18N.lang;
    channelChanged();
    $('subs-channel').addEventListener('change', channelChanged);
    $('subs-form').addEventListener('submit', create);
    $('subs-open').addEventListener('click', openDialog);
    $('subs-close').addEventListener('click', closeDialog);
    document.addEventListener('keydown', function (ev) { if (ev.key === 'Escape' && st.open) closeDialog(); });
    $('subs-secret-copy').addEventListener('click', copySecret);
    $('subs-secret-done').addEventListener('click', hideSecret);
    $('subs-del-status').addEventListener('change', function () { loadDeliveries().catch(function (err) { showError(problem(err)); }); });
    $('subs-del-refresh').addEventListener('click', refresh);
    $('subs-list').addEventListener('click', function (ev) {
      var b = ev.target.closest('button[data-action=delete]');
      if (b) remove(b.closest('li'), b);
    });
    refreshSummary();
  }

  // ------------------------------------------------------------ incident report
  var lastBlob = null;
  function reportStatus(text, cls, link) {
    var box = $('replay-report-status');
    box.textContent = '';
    box.className = 'replay-report-status small' + (cls ? ' ' + cls : '');
    box.hidden = !text;
    if (text) el('span', null, text, box);
    if (link) {
      var a = el('a', 'report-download', T('report.download'), box);
      a.href = link.url; a.download = link.filename;
    }
  }
  function filenameOf(r, name) {
    var m = /filename="([^"]+)"/.exec(r.headers.get('Content-Disposition') || '');
    return m ? m[1] : String(name).split('/').pop().split('.')[0] + '.report.html';
  }
  function report() {
    var name = $('replay-recording').value;
    if (!name) { reportStatus(T('report.none'), 'error'); return; }
    // a tab opened now, in the click, is not a blocked pop-up; the page goes into it when it comes
    var tab = window.open('', '_blank');
    if (tab) {
      try { tab.document.title = T('report.loading', { name: name }); tab.document.body.textContent = T('report.loading', { name: name }); } catch (err) { /* ignore */ }
    }
    var headers = { Accept: 'text/html', 'Accept-Language': I18N.lang };
    if (SK.auth.key) headers.Authorization = 'Bearer ' + SK.auth.key;
    var url = '/v1/recordings/' + name.split('/').map(encodeURIComponent).join('/') + '/report';
    $('replay-report').disabled = true;
    reportStatus(T('report.loading', { name: name }), 'pending');
    fetch(url, { cache: 'no-store', headers: headers }).then(function (r) {
      if (!r.ok) {
        return r.json().catch(function () { return {}; }).then(function (b) {
          var err = new Error('HTTP ' + r.status);
          err.status = r.status; err.detail = b && b.detail;
          throw err;
        });
      }
      return r.blob().then(function (blob) {
        var filename = filenameOf(r, name);
        if (lastBlob) { var old = lastBlob; setTimeout(function () { URL.revokeObjectURL(old); }, BLOB_MS); }
        lastBlob = URL.createObjectURL(new Blob([blob], { type: 'text/html;charset=utf-8' }));
        var shown = false;
        if (tab && !tab.closed) { tab.location.replace(lastBlob); shown = true; }
        reportStatus(T(shown ? 'report.opened' : 'report.blocked', { name: filename }), 'ok', { url: lastBlob, filename: filename });
      });
    }).catch(function (err) {
      if (tab && !tab.closed) tab.close();
      reportStatus(T('report.failed', { why: problem(err) }), 'error');
    }).then(function () { $('replay-report').disabled = false; });
  }

  function start(me) {
    SK = window.Skylane;
    if (!me) return;
    if (REPORT_ROLES[me.role]) $('replay-report').addEventListener('click', report);
    if (ADMIN[me.role]) startSubscriptions();
  }
  window.SkylaneAlertSubscriptions = { start: start, channels: CHANNELS };
})();
