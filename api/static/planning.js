/*
 * Flight planning for operators (and admins): a route from a file (DJI KMZ/WPML, KML, GeoJSON, QGC WPL: the
 * server reads it, POST /v1/clearances with the file's content type) or drawn on the map (click to add
 * waypoints; sent as JSON), a departure in Beijing time and a speed; the decision comes back in the page's
 * language and is drawn by plan-layer.js; a suggestion is applied with one click (its waypoints resubmitted).
 */
(function () {
  'use strict';
  var SK, T = I18N.t;
  var ROLES = { operator: true, admin: true };
  var TYPES = { kmz: 'application/vnd.google-earth.kmz', kml: 'application/vnd.google-earth.kml+xml',
    wpml: 'application/vnd.google-earth.kml+xml', geojson: 'application/geo+json', json: 'application/geo+json',
    waypoints: 'text/plain', txt: 'text/plain' };
  var st = { file: null, drawn: [], drawing: false, last: null, altRef: 'AGL' };
  function $(id) { return document.getElementById(id); }

  function contentType(name) {
    var ext = String(name || '').split('.').pop().toLowerCase();
    return TYPES[ext] || 'application/octet-stream';
  }
  function departureIso() {
    var ms = I18N.fromLocalInput($('plan-departure').value);
    return isFinite(ms) ? new Date(ms).toISOString() : new Date().toISOString();
  }
  function routeInfo() {
    var info = $('plan-route-info');
    if (st.file) info.textContent = T('plan.file_chosen', { name: st.file.name });
    else if (st.drawn.length) info.textContent = T('plan.points_drawn', { n: st.drawn.length });
    else info.textContent = st.drawing ? T('plan.click_to_add') : '';
    $('plan-draw').textContent = T(st.drawing ? 'plan.draw_done' : 'plan.draw');
    $('plan-draw').classList.toggle('active', st.drawing);
  }
  function setDrawing(on) {
    st.drawing = on;
    SK.mapClick = on ? function (lon, lat) {
      st.drawn.push([Math.round(lon * 1e6) / 1e6, Math.round(lat * 1e6) / 1e6]);
      PlanLayer.draft(st.drawn); routeInfo();
      return true;
    } : null;
    document.body.classList.toggle('plan-drawing', on);
    routeInfo();
  }

  function submitFile(withAlt) {
    var q = ['uav_id=' + encodeURIComponent($('plan-uav').value.trim()), 'departure=' + encodeURIComponent(departureIso())];
    if ($('plan-speed').value) q.push('speed_mps=' + encodeURIComponent($('plan-speed').value));
    if (withAlt) q.push('alt_m=' + encodeURIComponent($('plan-alt').value || 60), 'alt_ref=' + $('plan-alt-ref').value);
    return SK.api('POST', '/v1/clearances?' + q.join('&'), undefined, { type: contentType(st.file.name), body: st.file })
      .catch(function (err) {   // a file without heights: the form's altitude, once
        if (!withAlt && err.status === 422 && /alt_m/.test(String(err.detail || ''))) return submitFile(true);
        throw err;
      });
  }
  function submitJson(body) { return SK.api('POST', '/v1/clearances', body); }
  function drawnBody() {
    var alt = Number($('plan-alt').value || 60);
    var body = { uav_id: $('plan-uav').value.trim(), alt_ref: $('plan-alt-ref').value, departure: departureIso(),
      waypoints: st.drawn.map(function (p) { return { lon: p[0], lat: p[1], alt_m: alt }; }) };
    if ($('plan-speed').value) body.speed_mps = Number($('plan-speed').value);
    return body;
  }

  function run(promise, altRef) {
    $('plan-submit').disabled = true;
    var res = $('plan-result');
    res.hidden = false;
    $('plan-decision').className = 'plan-decision pending';
    $('plan-decision').textContent = T('plan.checking');
    $('plan-reasons').textContent = ''; $('plan-suggestions').textContent = '';
    return promise.then(function (resp) {
      st.last = resp;
      st.altRef = (resp.source && resp.source.alt_ref) || altRef || st.altRef;
      show(resp);
    }).catch(function (err) {
      $('plan-decision').className = 'plan-decision error';
      $('plan-decision').setAttribute('data-decision', 'error');
      $('plan-decision').textContent = typeof err.detail === 'string' ? err.detail : err.message;
    }).then(function () { $('plan-submit').disabled = false; });
  }
  function show(resp) {
    var d = $('plan-decision');
    d.className = 'plan-decision ' + resp.decision;
    d.setAttribute('data-decision', resp.decision);
    d.textContent = T('decision.' + resp.decision) + ' · ' + I18N.dateTime(SK.parseTs(resp.start_time)) + ' – ' +
      I18N.time(SK.parseTs(resp.end_time));
    if (resp.source) d.title = T('plan.source', { format: resp.source.format, file: resp.source.file, ref: resp.source.alt_ref });
    var list = $('plan-reasons');
    (resp.reasons || []).forEach(function (r, i) {
      var li = SK.htmlEl('li', 'plan-reason-item', null, list);
      li.setAttribute('data-reason', i); li.setAttribute('data-code', r.code);
      if (r.zone_id != null) li.setAttribute('data-zone-id', r.zone_id);
      SK.htmlEl('span', 'plan-n', String(i + 1), li);
      SK.htmlEl('span', null, r.message, li);
      li.addEventListener('mouseenter', function () { PlanLayer.focus(i); });
      li.addEventListener('mouseleave', function () { PlanLayer.focus(null); });
    });
    var sl = $('plan-suggestions');
    (resp.suggestions || []).forEach(function (s, i) {
      var li = SK.htmlEl('li', 'plan-suggestion', null, sl);
      li.setAttribute('data-kind', s.kind);
      SK.htmlEl('span', null, s.message, li);
      var b = SK.htmlEl('button', 'plan-apply', T('plan.apply'), li);
      b.type = 'button'; b.setAttribute('data-suggestion', i);
    });
    PlanLayer.decision(resp);
    if (resp.route && resp.route.length) SK.fitTo(resp.route.map(function (p) { return [p.lon, p.lat]; }));
    $('plan-summary').textContent = T('decision.' + resp.decision);
  }
  function apply(i) {   // resubmit the suggestion's waypoints as they are (they carry their times when timed)
    var s = st.last && st.last.suggestions && st.last.suggestions[i];
    if (!s) return;
    var body = { uav_id: st.last.uav_id || $('plan-uav').value.trim(), alt_ref: s.alt_ref || st.altRef, waypoints: s.waypoints };
    if (!s.waypoints.length || s.waypoints[0].t == null) { body.departure = s.departure || departureIso(); }
    run(submitJson(body), body.alt_ref);
  }

  function start(me) {
    SK = window.Skylane;
    if (!ROLES[me.role]) return;
    $('plan-panel').hidden = false;
    var dep = Date.now() + 10 * 60000;
    $('plan-departure').value = I18N.toLocalInput(dep - dep % 60000);
    SK.api('GET', '/v1/devices?kind=uav').then(function (list) {
      var dl = $('plan-uavs');
      (list || []).forEach(function (d) { SK.htmlEl('option', null, null, dl).value = d.device_id; });
      if (list && list.length === 1 && !$('plan-uav').value) $('plan-uav').value = list[0].device_id;
    }).catch(function () { /* the field takes any id */ });
    $('plan-file').addEventListener('change', function (ev) {
      st.file = ev.target.files && ev.target.files[0] || null;
      if (st.file) { st.drawn = []; setDrawing(false); PlanLayer.clear(); }
      routeInfo();
    });
    $('plan-draw').addEventListener('click', function () {
      if (!st.drawing) { st.file = null; $('plan-file').value = ''; if (!st.drawn.length) PlanLayer.clear(); }
      setDrawing(!st.drawing);
    });
    $('plan-clear').addEventListener('click', function () {
      st.file = null; st.drawn = []; $('plan-file').value = ''; setDrawing(false); PlanLayer.clear();
      $('plan-result').hidden = true; $('plan-summary').textContent = '';
    });
    $('plan-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      setDrawing(false);
      if (st.file) run(submitFile(false));
      else if (st.drawn.length >= 2) run(submitJson(drawnBody()), $('plan-alt-ref').value);
      else SK.showNotice(T('plan.need_route'), 'warn');
    });
    $('plan-suggestions').addEventListener('click', function (ev) {
      var b = ev.target.closest('button.plan-apply');
      if (b) apply(Number(b.getAttribute('data-suggestion')));
    });
    routeInfo();
  }
  window.SkylanePlanning = { start: start };
})();
