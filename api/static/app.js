/*
 * Skylane operations dashboard.
 *
 * Plain JS, no build step, no third-party code, no network beyond this origin:
 *   GET /v1/me                    who the API key in sessionStorage belongs to ({key_id, role, owner})
 *   GET /static/basemap.geojson   district outline + illustrative Huangpu polyline
 *   GET /v1/zones                 airspace zones (GeoJSON; properties.state active|suspended|inactive)
 *   GET /v1/uavs                  latest UAV states (array)
 *   GET /v1/events?limit=50       recent events, newest first ({items, next_cursor})
 *   POST /v1/events/{id}/ack      acknowledge an alert (operators, engineers, admins)
 *   GET /v1/sensors, /v1/sensors/{id}/readings   latest values; a short bucketed history for the chart
 *   GET /v1/clearances/{id}       the selected drone's clearance
 *   GET /v1/recordings, GET|POST /v1/replays     the engineers' replay control (its report button and the admins'
 *                                                alert subscriptions: alert-subscriptions.js)
 *   GET /v1/health                {status, database, mqtt}
 *   WS  /v1/live?access_token=[&root=replay/...]   JSON arrays of messages (a bare object is accepted too);
 *        with root= a replay's feed (engineers): the replay control switches the map to it and back to live.
 *        {"type":"position", ...uav state}   {"type":"event", ...event}   {"type":"zone_state", zone_id, state}
 *        {"type":"sensor","sensor_id","ts","values":{}}   {"type":"zones_changed"}   {"type":"notice","message"}
 *        {"type":"traffic", ...fused track}: the air picture, drawn by traffic-layer.js (as are pair events)
 * Every endpoint but the key check degrades: a 404 or error leaves its panel saying so, the rest works.
 *
 * Map: SVG drawn here. Geometry is projected once into "world" units (equirectangular, longitude
 * scaled by cos(lat0)); zoom/pan only changes one transform on the world group, strokes use
 * vector-effect non-scaling-stroke. Drone markers and labels live in a screen-space overlay so they
 * keep their size; they are repositioned when the view changes.
 *
 * Rendering: incoming messages only update in-memory state and mark things dirty; one
 * requestAnimationFrame pass applies the changes to existing DOM elements.
 */
(function () {
  'use strict';

  var CFG = {
    trailLen: 30,          // positions kept per drone trail
    maxAlerts: 100,        // rows kept in the alert list
    staleMs: 30000,        // no update for this long: drone shown as stale, not counted live
    dropMs: 10 * 60000,    // no update for this long: drone removed from the map
    healthEveryMs: 15000,
    zonesEveryMs: 60000,
    backoffMinMs: 1000,
    backoffMaxMs: 30000,
    fitMarginPx: 36,
    minZoom: 0.25,
    maxZoom: 80,
    riverWidthM: 380,
    denseLabels: 60,       // above this many drones per fitted view, routine labels are hidden      // drawn width of the illustrative river
    worldScale: 10000      // world units per degree of latitude
  };
  var DEFAULT_BOUNDS = [121.436, 31.012, 121.548, 31.100];
  var VIOLATION_KINDS = { no_fly_violation: true, altitude_violation: true };
  var MUTED_KINDS = { zone_enter: true, zone_exit: true };
  var SVGNS = 'http://www.w3.org/2000/svg';

  // ------------------------------------------------------------------ helpers
  function $(id) { return document.getElementById(id); }
  function svgEl(tag, attrs, parent) {
    var el = document.createElementNS(SVGNS, tag);
    if (attrs) for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) el.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(el);
    return el;
  }
  function htmlEl(tag, cls, text, parent) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    if (text != null) el.textContent = text;
    if (parent) parent.appendChild(el);
    return el;
  }
  function isNum(v) { return typeof v === 'number' && isFinite(v); }
  function parseTs(ts) {
    if (ts == null) return NaN;
    if (typeof ts === 'number') return ts > 1e12 ? ts : ts * 1000;
    var n = Number(ts);
    if (ts !== '' && isFinite(n)) return n > 1e12 ? n : n * 1000;
    return Date.parse(ts);
  }
  function hms(ts) { return I18N.time(parseTs(ts)); }   // Asia/Shanghai, whatever the browser's zone
  var T = I18N.t;
  function kindLabel(kind) { return I18N.has('kind.' + kind) ? T('kind.' + kind) : kind; }
  function metricLabel(m) { return I18N.has('metric.' + m) ? T('metric.' + m) : m; }
  function refLabel(r) { return r && I18N.has('alt_ref.' + r) ? T('alt_ref.' + r) : (r || ''); }
  function fmt(v, digits, unit) {
    if (!isNum(v)) return '—';
    return v.toFixed(digits) + (unit ? ' ' + unit : '');
  }
  function fmtValue(v) {
    if (!isNum(v)) return String(v);
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-2)) return v.toExponential(2);
    if (Number.isInteger(v)) return String(v);
    return a >= 10 ? v.toFixed(1) : v.toFixed(2);
  }
  function cssIdent(s) { return String(s == null ? 'unknown' : s).replace(/[^A-Za-z0-9_-]/g, '_'); }
  // the air picture's layer (traffic-layer.js, loaded after this file): trafficLayer('onEvent', e), when present
  function trafficLayer(fn) {
    var L = window.TrafficLayer;
    return L ? L[fn].apply(L, Array.prototype.slice.call(arguments, 1)) : undefined;
  }
  // ---------------------------------------------------------------- auth + API
  var KEY_STORE = 'skylane.apiKey';
  var auth = { key: null, me: null };
  var ACK_ROLES = { operator: true, engineer: true, admin: true };
  var REPLAY_ROLES = { engineer: true, admin: true };
  function api(method, url, body, raw) {
    var headers = { Accept: 'application/json', 'Accept-Language': I18N.lang };
    if (auth.key) headers.Authorization = 'Bearer ' + auth.key;
    var opts = { method: method, cache: 'no-store', headers: headers };
    if (raw) { headers['Content-Type'] = raw.type; opts.body = raw.body; }   // a route file
    else if (body !== undefined) { headers['Content-Type'] = 'application/json'; opts.body = JSON.stringify(body); }
    return fetch(url, opts).then(function (r) {
      if (r.status === 401 && auth.key) keyRefused();
      if (!r.ok) {
        return r.json().catch(function () { return {}; }).then(function (b) {
          var err = new Error('HTTP ' + r.status + (b && typeof b.detail === 'string' ? ': ' + b.detail : ''));
          err.status = r.status;
          err.detail = b && b.detail;
          throw err;
        });
      }
      return r.status === 204 ? null : r.json();
    });
  }
  function fetchJSON(url) { return api('GET', url); }
  function canAck() { return !!(auth.me && ACK_ROLES[auth.me.role]); }
  function eachRing(geom, fn) {
    if (!geom) return;
    if (geom.type === 'Polygon') geom.coordinates.forEach(fn);
    else if (geom.type === 'MultiPolygon') geom.coordinates.forEach(function (p) { p.forEach(fn); });
    else if (geom.type === 'LineString') fn(geom.coordinates);
    else if (geom.type === 'MultiLineString') geom.coordinates.forEach(fn);
    else if (geom.type === 'GeometryCollection') (geom.geometries || []).forEach(function (g) { eachRing(g, fn); });
  }
  function geomBounds(geoms) {
    var b = [Infinity, Infinity, -Infinity, -Infinity];
    geoms.forEach(function (g) {
      eachRing(g, function (ring) {
        ring.forEach(function (c) {
          if (c[0] < b[0]) b[0] = c[0]; if (c[1] < b[1]) b[1] = c[1];
          if (c[0] > b[2]) b[2] = c[0]; if (c[1] > b[3]) b[3] = c[1];
        });
      });
    });
    return isFinite(b[0]) ? b : null;
  }

  // --------------------------------------------------------------- projection
  var proj = null;
  function makeProjection(b) {
    var lon0 = (b[0] + b[2]) / 2, lat0 = (b[1] + b[3]) / 2;
    var kx = Math.cos(lat0 * Math.PI / 180), S = CFG.worldScale;
    return {
      lon0: lon0, lat0: lat0,
      fwd: function (lon, lat) { return [(lon - lon0) * kx * S, -(lat - lat0) * S]; },
      inv: function (x, y) { return [x / (kx * S) + lon0, -y / S + lat0]; },
      metresPerUnit: 111320 / S
    };
  }
  function r2(v) { return Math.round(v * 100) / 100; }
  function pathD(geom, closed) {
    var d = [];
    eachRing(geom, function (ring) {
      for (var i = 0; i < ring.length; i++) {
        var p = proj.fwd(ring[i][0], ring[i][1]);
        d.push((i ? 'L' : 'M') + r2(p[0]) + ',' + r2(p[1]));
      }
      if (closed) d.push('Z');
    });
    return d.join('');
  }

  // --------------------------------------------------------------------- view
  var svg, gWorld, gBase, gZones, gTrails, gLabels, gUavs, hatch;
  var view = { cx: 0, cy: 0, zoom: 1, k: 1, tx: 0, ty: 0, fitK: 1, W: 0, H: 0 };
  var worldFit = null;      // [x0, y0, x1, y1] of the zone layer in world units
  var riverPath = null;
  var riverLabel = null;
  var viewHooks = [];       // functions re-placing other layers' overlay marks after a view change

  function computeFit() {
    var r = svg.getBoundingClientRect();
    view.W = Math.max(1, r.width); view.H = Math.max(1, r.height);
    var f = worldFit || [-500, -500, 500, 500];
    var m = CFG.fitMarginPx;
    var fw = Math.max(1e-6, f[2] - f[0]), fh = Math.max(1e-6, f[3] - f[1]);
    view.fitK = Math.max(1e-6, Math.min((view.W - 2 * m) / fw, (view.H - 2 * m) / fh));
  }
  function resetView() {
    var f = worldFit || [-500, -500, 500, 500];
    view.cx = (f[0] + f[2]) / 2; view.cy = (f[1] + f[3]) / 2; view.zoom = 1;
    markView();
  }
  function toScreen(wx, wy) { return [wx * view.k + view.tx, wy * view.k + view.ty]; }

  function applyView() {
    computeFit();
    view.k = view.fitK * view.zoom;
    view.tx = view.W / 2 - view.cx * view.k;
    view.ty = view.H / 2 - view.cy * view.k;
    gWorld.setAttribute('transform', 'translate(' + r2(view.tx) + ',' + r2(view.ty) + ') scale(' + view.k + ')');
    hatch.setAttribute('patternTransform', 'rotate(45) scale(' + (1 / view.k) + ')');
    if (riverPath && proj) {
      var px = Math.max(5, Math.min(60, CFG.riverWidthM / proj.metresPerUnit * view.k));
      riverPath.style.strokeWidth = px + 'px';
    }
    // screen-space overlay
    zoneLabels.forEach(function (lab) {
      placeAt(lab.el, lab.wx, lab.wy);
      if (lab.rWorld) lab.el.setAttribute('x', r2(Math.max(9, lab.rWorld * view.k + 4)));
      if (lab.offWorld) lab.el.setAttribute('y', r2(-(lab.offWorld * view.k + 5)));
    });
    if (riverLabel) placeRiverLabel();
    uavs.forEach(function (u) { if (u.g && u.wx != null) placeAt(u.g, u.wx, u.wy); });
    viewHooks.forEach(function (fn) { fn(); });   // other layers' screen-space marks (plan-layer.js)
    updateScalebar();
    updateDensity();
  }
  function placeAt(el, wx, wy) {
    var s = toScreen(wx, wy);
    el.setAttribute('transform', 'translate(' + r2(s[0]) + ',' + r2(s[1]) + ')');
  }
  function updateScalebar() {
    if (!proj) return;
    var mPerPx = proj.metresPerUnit / view.k;
    var target = mPerPx * 110;
    var steps = [10, 20, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 50000];
    var len = steps[0];
    for (var i = 0; i < steps.length; i++) if (steps[i] <= target) len = steps[i];
    var px = len / mPerPx;
    var bar = document.querySelector('#scalebar .scalebar-bar');
    bar.style.width = Math.round(px) + 'px';
    document.querySelector('#scalebar .scalebar-label').textContent = len >= 1000 ? (len / 1000) + ' km' : len + ' m';
  }
  function zoomAt(sx, sy, factor) {
    var z = Math.max(CFG.minZoom, Math.min(CFG.maxZoom, view.zoom * factor));
    var wx = (sx - view.tx) / view.k, wy = (sy - view.ty) / view.k;
    var k2 = view.fitK * z;
    var tx2 = sx - wx * k2, ty2 = sy - wy * k2;
    view.zoom = z;
    view.cx = (view.W / 2 - tx2) / k2; view.cy = (view.H / 2 - ty2) / k2;
    // keep view.k/tx/ty coherent for consecutive wheel events inside one frame
    view.k = k2; view.tx = tx2; view.ty = ty2;
    markView();
  }

  // -------------------------------------------------------------------- state
  var zones = new Map();        // id -> {feature, path, kind}
  var zoneLabels = new Map();   // id -> {el, wx, wy}
  var uavs = new Map();         // id -> uav record
  var sensors = new Map();      // id -> {ts, values, row, dirty}
  var seenEvents = new Set();
  var seenOrder = [];
  var pendingEvents = [];
  var eventSeq = 0;
  var dirtyUavs = new Set();
  var dirty = { view: false, sensors: false, counts: false, detail: false };
  var rafId = 0;
  var selectedId = null;
  var mapReady = false;
  var pendingPositions = [];    // positions that arrived before the projection existed

  function schedule() {
    if (!rafId) rafId = requestAnimationFrame(flush);
  }
  function markView() { dirty.view = true; schedule(); }

  function flush() {
    rafId = 0;
    if (dirty.view) { dirty.view = false; applyView(); }
    if (dirtyUavs.size) {
      dirtyUavs.forEach(function (id) { var u = uavs.get(id); if (u) renderUav(u); });
      dirtyUavs.clear();
      dirty.counts = true;
    }
    if (pendingEvents.length) renderEvents();
    if (dirty.sensors) { dirty.sensors = false; renderSensors(); }
    if (dirty.counts) { dirty.counts = false; renderCounts(); }
    if (dirty.detail) { dirty.detail = false; renderDetail(); }
  }

  // -------------------------------------------------------------------- zones
  var KIND_ORDER = { area: 0, authorization: 1, restricted: 2, corridor: 3, vertiport: 4 };
  var LABELLED = { corridor: true, vertiport: true, restricted: true, authorization: true, conditional: true };

  function zoneBand(p) {
    var lo = p.lower_m, hi = p.upper_m;
    return (lo != null ? lo : '?') + '-' + (hi != null ? hi : '?') + ' m ' + refLabel(p.alt_ref || 'AGL');
  }
  function zoneName(id) {   // in the page's language: name_zh of the zone file in Chinese
    var z = zones.get(id);
    if (!z) return id;
    var p = z.feature.properties;
    return (I18N.lang === 'zh-CN' && p.name_zh) || p.name || id;
  }
  function labelAnchor(f) {
    var p = f.properties || {};
    if (p.kind === 'corridor' && Array.isArray(p.centerline) && p.centerline.length > 1) {
      // a point 30% along the centre line, clear of the river crossing
      var pts = p.centerline.map(function (c) { return proj.fwd(c[0], c[1]); });
      var total = 0, seg = [];
      for (var i = 1; i < pts.length; i++) { var l = Math.hypot(pts[i][0] - pts[i - 1][0], pts[i][1] - pts[i - 1][1]); seg.push(l); total += l; }
      var want = total * 0.3;
      for (var j = 0; j < seg.length; j++) {
        if (want <= seg[j] || j === seg.length - 1) {
          var t = seg[j] ? Math.min(1, want / seg[j]) : 0;
          return [pts[j][0] + (pts[j + 1][0] - pts[j][0]) * t, pts[j][1] + (pts[j + 1][1] - pts[j][1]) * t];
        }
        want -= seg[j];
      }
    }
    if (Array.isArray(p.center) && p.center.length >= 2) return proj.fwd(p.center[0], p.center[1]);
    var b = geomBounds([f.geometry]);
    if (!b) return null;
    return proj.fwd((b[0] + b[2]) / 2, (b[1] + b[3]) / 2);
  }

  function renderZones(fc) {
    var feats = (fc && fc.features) || [];
    feats = feats.filter(function (f) { return f && f.geometry && (f.geometry.type === 'Polygon' || f.geometry.type === 'MultiPolygon'); });
    feats.sort(function (a, b) {
      var ka = KIND_ORDER[(a.properties || {}).kind], kb = KIND_ORDER[(b.properties || {}).kind];
      return (ka == null ? 1.5 : ka) - (kb == null ? 1.5 : kb);
    });
    var keep = new Set();
    feats.forEach(function (f, idx) {
      var p = f.properties || (f.properties = {});
      var id = String(p.id != null ? p.id : (f.id != null ? f.id : 'zone-' + idx));
      var kind = p.kind || 'area';
      keep.add(id);
      var z = zones.get(id);
      if (!z) {
        var path = svgEl('path', { 'data-zone-id': id, 'vector-effect': 'non-scaling-stroke' });
        svgEl('title', null, path);
        z = { path: path };
        zones.set(id, z);
      }
      z.feature = f; z.kind = kind; z.id = id;
      z.path.setAttribute('data-kind', kind);
      z.path.setAttribute('d', pathD(f.geometry, true));
      z.path.setAttribute('fill-rule', 'evenodd');
      applyZoneState(z);
      gZones.appendChild(z.path);     // re-append keeps the kind order
      // label
      var lab = zoneLabels.get(id);
      if (LABELLED[kind]) {
        var a = labelAnchor(f);
        if (a) {
          if (!lab) {
            var t = svgEl('text', { 'class': 'zone-label' });
            lab = { el: t };
            zoneLabels.set(id, lab);
            gLabels.insertBefore(t, gLabels.firstChild);
          }
          lab.el.setAttribute('class', 'zone-label zone-label-' + cssIdent(kind));
          lab.el.setAttribute('data-zone-id', id);
          lab.el.textContent = id;
          if (kind === 'vertiport') { lab.el.setAttribute('x', 9); lab.el.setAttribute('y', 4); lab.el.setAttribute('text-anchor', 'start'); }
          else { lab.el.setAttribute('x', 0); lab.el.setAttribute('y', 4); lab.el.setAttribute('text-anchor', 'middle'); }
          lab.wx = a[0]; lab.wy = a[1];
          if (kind === 'vertiport') {
            var vb = geomBounds([f.geometry]);
            var va = vb && proj.fwd(vb[0], vb[1]), vc = vb && proj.fwd(vb[2], vb[3]);
            lab.rWorld = vb ? Math.abs(vc[0] - va[0]) / 2 : 0;   // label sits just outside the pad
          } else lab.rWorld = 0;
          // corridor labels sit just north of the corridor edge, off the drones' track
          lab.offWorld = kind === 'corridor' ? (isNum(p.width_m) ? p.width_m / 2 : 150) / proj.metresPerUnit : 0;
          return;
        }
      }
      if (lab) { lab.el.remove(); zoneLabels.delete(id); }
    });
    zones.forEach(function (z, id) {
      if (!keep.has(id)) {
        z.path.remove(); zones.delete(id);
        var lab = zoneLabels.get(id);
        if (lab) { lab.el.remove(); zoneLabels.delete(id); }
      }
    });
    markView();
  }

  // ------------------------------------------------------------------ basemap
  // Zone state: REST gives active|suspended|inactive (inactive = outside its schedule); live zone_state
  // messages (retained control topics) say suspended or active (= not suspended: back to the schedule).
  var liveZoneStates = new Map();   // id -> {state, reason, by, at}
  function zoneState(z) {
    var p = z.feature.properties || {};
    var rest = p.state || 'active';
    var live = liveZoneStates.get(z.id);
    if (!live) return { state: rest, reason: p.state_reason || '', by: p.state_by, at: p.state_at };
    if (live.state === 'suspended') return live;
    return { state: rest === 'suspended' ? 'active' : rest, reason: live.reason || '', by: live.by, at: live.at };
  }
  function applyZoneState(z) {
    var p = z.feature.properties || {};
    var st = zoneState(z);
    z.path.setAttribute('class', 'zone zone-' + cssIdent(z.kind) + ' zone-state-' + cssIdent(st.state) +
      (flashTimers.has(z.id) ? ' violated' : ''));
    z.path.setAttribute('data-state', st.state);
    var tip = zoneName(z.id) + '\n' + T('zone_kind.' + z.kind) + ' · ' + zoneBand(p) + '\n' +
      T('zone.state', { state: T('state.' + st.state) });
    if (st.reason) tip += ' — ' + st.reason;
    if (st.by) tip += ' (' + T('zone.by', { by: st.by }) + (st.at ? ', ' + st.at : '') + ')';
    if (p.reason) tip += '\n' + p.reason;
    else if (p.description) tip += '\n' + p.description;
    z.path.firstChild.textContent = tip;
    var lab = zoneLabels.get(z.id);
    if (lab) lab.el.classList.toggle('suspended', st.state === 'suspended');
  }
  var zoneReloadTimer = 0;
  function onZoneState(m) {
    if (!m || m.zone_id == null) return;
    var id = String(m.zone_id);
    liveZoneStates.set(id, { state: m.state, reason: m.reason || '', by: m.by, at: m.at });
    var z = zones.get(id);
    if (z) applyZoneState(z);
    if (m.state === 'suspended') showNotice(T('notice.zone_suspended', { zone: zoneName(id) }) + (m.reason ? T('notice.why', { reason: m.reason }) : ''), 'warn');
    scheduleZoneReload();
  }
  function scheduleZoneReload() {   // the REST view is authoritative (schedules): re-read it soon after a change
    clearTimeout(zoneReloadTimer);
    zoneReloadTimer = setTimeout(function () { if (mapReady) loadZones().then(renderZones).catch(function () {}); }, 1500);
  }

  function renderBasemap(fc) {
    (fc.features || []).forEach(function (f) {
      var p = f.properties || {};
      if (p.layer === 'district') {
        var d = svgEl('path', { 'class': 'district', d: pathD(f.geometry, true), 'vector-effect': 'non-scaling-stroke', 'fill-rule': 'evenodd' }, gBase);
        svgEl('title', null, d).textContent = (I18N.lang === 'zh-CN' ? (p.name || p.name_en) : (p.name_en || p.name)) || T('map.district');
      } else if (p.layer === 'river') {
        var dd = pathD(f.geometry, false);
        riverPath = svgEl('path', { 'class': 'river', d: dd, 'vector-effect': 'non-scaling-stroke' }, gBase);
        svgEl('path', { 'class': 'river-core', d: dd, 'vector-effect': 'non-scaling-stroke' }, gBase);
        svgEl('title', null, riverPath).textContent = T('map.river');
        var c = f.geometry.coordinates;
        var i = Math.min(c.length - 2, Math.max(0, Math.floor(c.length * 0.62)));
        var a = proj.fwd(c[i][0], c[i][1]), b = proj.fwd(c[i + 1][0], c[i + 1][1]);
        riverLabel = { wx: (a[0] + b[0]) / 2, wy: (a[1] + b[1]) / 2, ang: Math.atan2(b[1] - a[1], b[0] - a[0]) * 180 / Math.PI };
        riverLabel.el = svgEl('text', { 'class': 'river-label', 'text-anchor': 'middle' }, gLabels);
        riverLabel.el.textContent = T('map.river');
      }
    });
    markView();
  }
  function placeRiverLabel() {
    var s = toScreen(riverLabel.wx, riverLabel.wy);
    var ang = riverLabel.ang;
    if (ang > 90) ang -= 180; if (ang < -90) ang += 180;
    riverLabel.el.setAttribute('transform', 'translate(' + r2(s[0]) + ',' + r2(s[1]) + ') rotate(' + r2(ang) + ') translate(0,-14)');
  }

  // --------------------------------------------------------------------- UAVs
  function uavTitle(u) {
    var s = u.s;
    var zs = (s.zones || []).map(zoneName);
    return [
      T('detail.title') + ' ' + u.id,
      T('detail.altitude') + ' ' + fmt(s.alt_m, 1, 'm') + (s.alt_ref ? ' ' + refLabel(s.alt_ref) : '') + ' · ' + T('detail.speed') + ' ' + fmt(s.speed_mps, 1, 'm/s') + ' · ' + T('detail.track') + ' ' + fmt(s.track_deg, 0, '°'),
      T('detail.status') + ' ' + (s.status || '—') + ' · ' + T('detail.battery') + ' ' + fmt(s.battery_pct, 0, '%'),
      T('detail.clearance') + ' ' + clearanceText(s),
      T('detail.zones') + ' ' + (zs.length ? zs.join(', ') : '—'),
      T('detail.alerts') + ' ' + (s.alerts && s.alerts.length ? s.alerts.map(kindLabel).join(', ') : T('detail.none')),
      T('detail.last_fix') + ' ' + hms(s.ts)
    ].join('\n');
  }

  function onPosition(m, fromRest) {
    if (!m || m.uav_id == null) return;
    if (!mapReady) { pendingPositions.push([m, fromRest]); return; }
    var id = String(m.uav_id);
    var u = uavs.get(id);
    if (!u) { u = { id: id, s: {}, trail: [], g: null, rx: 0 }; uavs.set(id, u); }
    // newer-only: never let a stale REST snapshot overwrite a live fix
    var tNew = parseTs(m.ts), tOld = parseTs(u.s.ts);
    if (fromRest && isFinite(tNew) && isFinite(tOld) && tNew < tOld) return;
    u.s = m;
    var now = Date.now();
    u.rx = now;
    if (fromRest) {
      // a snapshot may be old: judge staleness from its own timestamp
      if (isFinite(tNew) && now - tNew > CFG.staleMs) u.rx = now - CFG.staleMs - 1;
    }
    if (isNum(m.lon) && isNum(m.lat)) {
      var w = proj.fwd(m.lon, m.lat);
      u.wx = w[0]; u.wy = w[1];
      var last = u.trail[u.trail.length - 1];
      if (!last || last[0] !== w[0] || last[1] !== w[1]) {
        u.trail.push(w);
        if (u.trail.length > CFG.trailLen) u.trail.splice(0, u.trail.length - CFG.trailLen);
      }
    }
    dirtyUavs.add(id);
    if (id === selectedId) dirty.detail = true;
    schedule();
  }

  function renderUav(u) {
    var s = u.s;
    if (u.wx == null) return;
    if (!u.g) {
      var g = svgEl('g', { 'class': 'uav', 'data-uav-id': u.id });
      // invisible hit area over marker + label, so a click anywhere on the group's box selects it
      svgEl('rect', { 'class': 'uav-hit', x: -12, y: -19, width: 24 + u.id.length * 7, height: 31 }, g);
      svgEl('circle', { 'class': 'uav-halo', r: 12 }, g);
      svgEl('path', { 'class': 'uav-icon', d: 'M0,-9 L6.5,7 L0,3.5 L-6.5,7 Z' }, g);
      svgEl('circle', { 'class': 'uav-dot', r: 4.5 }, g);
      var t = svgEl('text', { 'class': 'uav-label', x: 10, y: -7 }, g);
      t.textContent = u.id;
      svgEl('title', null, g);
      u.g = g; u.icon = g.querySelector('.uav-icon'); u.title = g.lastChild;
      u.trailEl = svgEl('polyline', { 'class': 'trail', 'data-uav-id': u.id, 'vector-effect': 'non-scaling-stroke', fill: 'none' }, gTrails);
      gUavs.appendChild(g);
    }
    var alert = !!(s.alerts && s.alerts.length);
    var stale = Date.now() - u.rx > CFG.staleMs;
    var cls = 'uav' + (alert ? ' alert' : '') + (stale ? ' stale' : '') + (u.id === selectedId ? ' selected' : '') + (isNum(s.track_deg) ? '' : ' no-track');
    if (u.cls !== cls) {
      u.g.setAttribute('class', cls); u.cls = cls;
      u.trailEl.setAttribute('class', 'trail' + (alert ? ' alert' : '') + (stale ? ' stale' : ''));
      if (alert && u.g.nextSibling) gUavs.appendChild(u.g);   // violators drawn on top
    }
    u.g.setAttribute('data-lon', s.lon);
    u.g.setAttribute('data-lat', s.lat);
    u.g.setAttribute('data-alt', s.alt_m != null ? s.alt_m : '');
    u.g.setAttribute('data-alerts', (s.alerts || []).join(' '));
    u.g.setAttribute('data-status', s.status != null ? s.status : '');
    u.g.setAttribute('data-clearance', s.clearance_id != null ? s.clearance_id : '');
    if (isNum(s.track_deg)) u.icon.setAttribute('transform', 'rotate(' + r2(s.track_deg) + ')');
    placeAt(u.g, u.wx, u.wy);
    var pts = '';
    for (var i = 0; i < u.trail.length; i++) pts += (i ? ' ' : '') + r2(u.trail[i][0]) + ',' + r2(u.trail[i][1]);
    u.trailEl.setAttribute('points', pts);
    u.title.textContent = uavTitle(u);
  }

  function sweepStale() {
    var now = Date.now();
    uavs.forEach(function (u, id) {
      var age = now - u.rx;
      if (age > CFG.dropMs) {
        if (u.g) u.g.remove();
        if (u.trailEl) u.trailEl.remove();
        uavs.delete(id);
        if (id === selectedId) select(null);
        dirty.counts = true;
      } else if ((age > CFG.staleMs) !== /\bstale\b/.test(u.cls || '')) {
        dirtyUavs.add(id);
      }
    });
    schedule();
  }

  function renderCounts() {
    var now = Date.now(), live = 0, active = 0, violators = 0;
    uavs.forEach(function (u) {
      if (now - u.rx <= CFG.staleMs) {
        live++;
        var n = (u.s.alerts || []).length;
        active += n; if (n) violators++;
      }
    });
    updateDensity();
    $('uav-count').textContent = String(live);
    var ac = $('alert-count');
    ac.textContent = String(active);
    ac.classList.toggle('hot', active > 0);
    ac.title = T('stat.alerts_detail', { n: active, drones: violators });
  }

  // many drones at low zoom: hide routine labels (alerting, selected and hovered drones keep theirs)
  function updateDensity() {
    var dense = uavs.size / (view.zoom * view.zoom) > CFG.denseLabels;
    if (dense !== svg.classList.contains('dense')) svg.classList.toggle('dense', dense);
  }

  // --------------------------------------------------------------- clearances
  var clearances = new Map();   // clearance id -> {decision, ...} | {error}
  function clearanceText(s) {
    if (!s.clearance_id) return T('detail.none');
    var c = clearances.get(String(s.clearance_id));
    if (!c) return s.clearance_id;
    if (c.error) return s.clearance_id + ' (' + c.error + ')';
    var t = s.clearance_id + ' · ' + (c.decision ? T('decision.' + c.decision) : '?');
    if (c.end_time) t += ' ' + T('detail.until', { time: hms(c.end_time) });
    return t;
  }
  function loadClearance(cid) {
    if (!cid || clearances.has(String(cid))) return;
    clearances.set(String(cid), { error: T('common.loading') });
    fetchJSON('/v1/clearances/' + encodeURIComponent(cid)).then(function (c) {
      clearances.set(String(cid), c || {});
    }).catch(function (err) {
      clearances.set(String(cid), { error: err.status === 404 ? T('detail.not_on_record') : T('detail.unavailable') });
    }).then(function () { dirty.detail = true; schedule(); });
  }

  // ---------------------------------------------------------- selection/detail
  function select(id) {
    var prev = selectedId;
    selectedId = id;
    if (id != null && uavs.has(id)) loadClearance(uavs.get(id).s.clearance_id);
    [prev, id].forEach(function (x) { if (x != null && uavs.has(x)) dirtyUavs.add(x); });
    dirty.detail = true;
    schedule();
  }
  function renderDetail() {
    var panel = $('detail-panel');
    var u = selectedId != null ? uavs.get(selectedId) : null;
    if (!u) { panel.hidden = true; return; }
    panel.hidden = false;
    var s = u.s;
    $('detail-id').textContent = u.id;
    var rows = [
      [T('detail.position'), isNum(s.lat) && isNum(s.lon) ? s.lat.toFixed(5) + ', ' + s.lon.toFixed(5) : '—'],
      [T('detail.altitude'), fmt(s.alt_m, 1, 'm') + (s.alt_ref ? ' ' + refLabel(s.alt_ref) : '')],
      [T('detail.speed'), fmt(s.speed_mps, 1, 'm/s')],
      [T('detail.track'), fmt(s.track_deg, 0, '°')],
      [T('detail.status'), s.status || '—'],
      [T('detail.battery'), fmt(s.battery_pct, 0, '%')],
      [T('detail.clearance'), clearanceText(s)],
      [T('detail.zones'), (s.zones || []).length ? s.zones.map(function (z) { return z + ' – ' + zoneName(z); }).join('\n') : '—'],
      [T('detail.alerts'), (s.alerts || []).length ? s.alerts.map(kindLabel).join(', ') : T('detail.none')],
      [T('detail.last_fix'), hms(s.ts)]
    ];
    var dl = $('uav-detail');
    if (dl.childNodes.length !== rows.length * 2) {
      dl.textContent = '';
      rows.forEach(function (r) { htmlEl('dt', null, r[0], dl); htmlEl('dd', null, '', dl); });
    }
    rows.forEach(function (r, i) {
      var dd = dl.childNodes[i * 2 + 1];
      if (dd.textContent !== r[1]) dd.textContent = r[1];
      dd.className = i === 8 && (s.alerts || []).length ? 'hot' : '';
    });
  }

  // ------------------------------------------------------------------- events
  // Content key, not id: REST events carry a database id, live events (from MQTT) do not, and the two
  // must dedupe against each other after a reconnect. ts is normalised (RFC 3339 spellings differ).
  function eventKey(e) {
    var t = parseTs(e.ts);
    return [e.kind, e.uav_id, e.zone_id, e.sensor_id, e.metric, isFinite(t) ? t : e.ts].join('|');
  }
  function onEvent(e) {
    if (!e || !e.kind) return;
    var key = eventKey(e);
    if (seenEvents.has(key)) return;
    seenEvents.add(key); seenOrder.push(key);
    if (seenOrder.length > 2000) seenEvents.delete(seenOrder.shift());
    pendingEvents.push({ e: e, seq: ++eventSeq });
    trafficLayer('onEvent', e);   // separation alerts drawn between both aircraft
    if (isViolation(String(e.kind)) && e.zone_id != null && Date.now() - parseTs(e.ts) < 60000) flashZone(String(e.zone_id));
    if (pendingEvents.length > 8 * CFG.maxAlerts) pendingEvents.splice(0, pendingEvents.length - 4 * CFG.maxAlerts);  // tab hidden: rAF paused
    schedule();
  }
  var flashTimers = new Map();
  function flashZone(id) {   // the zone a violation happened in is outlined for a while
    var z = zones.get(id);
    if (!z) return;
    z.path.classList.add('violated');
    clearTimeout(flashTimers.get(id));
    flashTimers.set(id, setTimeout(function () { z.path.classList.remove('violated'); flashTimers.delete(id); }, 30000));
  }
  function isViolation(kind) { return !!VIOLATION_KINDS[kind] || /_violation$/.test(kind); }

  // Sensor events (ingest.sensor_watch) carry a sensor, no UAV: one line saying what happened,
  // e.g. "wind_gust 14.2 > 12" for a threshold, "silent since 10:02:03" for a silence.
  function isSensorEvent(e) { return e.uav_id == null && e.sensor_id != null; }
  function sensorEventText(e) {
    var det = e.detail || {}, kind = String(e.kind), metric = e.metric != null ? String(e.metric) : '';
    var val = e.value != null ? fmtValue(e.value) : '?';
    var m = metricLabel(metric);
    if (kind === 'sensor_threshold') {
      return m + ' ' + val + (det.op === 'below' ? ' < ' : ' > ') + (det.limit != null ? fmtValue(det.limit) : '?');
    }
    if (kind === 'sensor_threshold_cleared') {
      return m + ' ' + val + ' ' + T(det.op === 'below' ? 'sensor_event.back_above' : 'sensor_event.back_below', { value: det.clear != null ? fmtValue(det.clear) : '?' });
    }
    if (kind === 'sensor_silent') return det.last_reading ? T('sensor_event.silent_since', { time: hms(det.last_reading) }) : T('sensor_event.silent');
    if (kind === 'sensor_resumed') return det.gap_s != null ? T('sensor_event.resumed_after', { s: fmtValue(det.gap_s) }) : T('sensor_event.resumed');
    if (kind === 'sensor_online') return T('sensor_event.online');
    if (kind === 'sensor_offline') return T('sensor_event.offline');
    return metric ? m + ' ' + val : kindLabel(kind);
  }

  function renderEvents() {
    var list = $('alerts');
    var batch = pendingEvents;
    pendingEvents = [];
    // order newest first (ties: later arrival on top); trimAlerts enforces the cap
    batch.sort(function (a, b) { return ((parseTs(b.e.ts) || 0) - (parseTs(a.e.ts) || 0)) || (b.seq - a.seq); });
    batch = batch.map(function (x) { return x.e; });
    if (batch.length > 4 * CFG.maxAlerts) batch = batch.slice(0, 4 * CFG.maxAlerts);
    var frag = document.createDocumentFragment();
    batch.forEach(function (e) {
      var kind = String(e.kind);
      var det = e.detail || {};
      var sensorEv = isSensorEvent(e);
      var li = htmlEl('li', 'alert alert-' + cssIdent(kind) + (isViolation(kind) ? ' violation' : (MUTED_KINDS[kind] ? ' muted-event' : ' other-event')) + (sensorEv ? ' sensor-event' : ''));
      li.setAttribute('data-kind', kind);
      if (e.id != null) li.setAttribute('data-event-id', e.id);
      if (e.uav_id != null) li.setAttribute('data-uav-id', e.uav_id);
      if (sensorEv) li.setAttribute('data-sensor-id', e.sensor_id);
      li.setAttribute('data-ts', parseTs(e.ts) || '');
      htmlEl('span', 'a-time', hms(e.ts), li);
      htmlEl('span', 'a-kind', kindLabel(kind), li);
      htmlEl('span', 'a-uav', e.uav_id != null ? String(e.uav_id) : (sensorEv ? String(e.sensor_id) : '—'), li);
      var zn = sensorEv ? sensorEventText(e) : ((e.zone_id != null ? zoneName(e.zone_id) : '') || det.zone_name || '');
      htmlEl('span', 'a-zone', zn || '—', li);
      var act = htmlEl('span', 'a-act', null, li);
      if (e.ack) markAcked(li, e.ack);
      else if (e.id != null && canAck() && !MUTED_KINDS[kind] && !sensorEv) {
        var b = htmlEl('button', 'ack-btn', T('alerts.ack'), act);
        b.type = 'button';
        b.title = T('alerts.ack_title');
      }
      var tip = [e.description || kindLabel(kind), I18N.dateTime(parseTs(e.ts)) + ' (' + kind + ')'];
      Object.keys(det).forEach(function (k) { if (k !== 'zone_name') tip.push(k + ': ' + (typeof det[k] === 'object' ? JSON.stringify(det[k]) : det[k])); });
      li.title = tip.join('\n');
      trafficLayer('decorateAlert', li, e);   // pair events: the other aircraft and the distance
      frag.appendChild(li);
    });
    // insert keeping the list newest-first even if an older event arrives late
    var firstTs = batch.length ? parseTs(batch[batch.length - 1].ts) : NaN;
    var head = list.firstChild;
    if (!head || !isFinite(firstTs) || !(Number(head.getAttribute('data-ts')) > firstTs)) {
      list.insertBefore(frag, head);
    } else {
      // rare: merge one by one
      Array.prototype.slice.call(frag.childNodes).forEach(function (li) {
        var t = Number(li.getAttribute('data-ts'));
        var n = list.firstChild;
        while (n && Number(n.getAttribute('data-ts')) > t) n = n.nextSibling;
        list.insertBefore(li, n);
      });
    }
    trimAlerts(list);
    renderAlertSummary();
  }
  function renderAlertSummary() {
    var rows = $('alerts').children, v = 0, open = 0;
    for (var i = 0; i < rows.length; i++) {
      if (!rows[i].classList.contains('violation')) continue;
      v++;
      if (!rows[i].classList.contains('acked')) open++;
    }
    var sum = $('alerts-summary');
    sum.textContent = T('alerts.summary_violations', { n: v }) + (v ? ' · ' + T('alerts.summary_open', { n: open }) : '') + ' · ' + T('alerts.summary_shown', { n: rows.length });
    sum.title = T('alerts.summary_title', { n: open });
    $('alerts-empty').hidden = rows.length > 0;
  }
  function markAcked(li, ack) {
    li.classList.add('acked');
    li.setAttribute('data-acked', 'true');
    var act = li.querySelector('.a-act');
    act.textContent = '✓ ' + (ack && ack.by ? ack.by : T('alerts.acked'));
    act.title = T('alerts.acked_title') + (ack && ack.by ? ' ' + ack.by : '') + (ack && ack.at ? ' ' + I18N.dateTime(parseTs(ack.at)) : '') +
      (ack && ack.note ? '\n' + ack.note : '');
  }
  function ackEvent(li, btn) {
    var id = li.getAttribute('data-event-id');
    btn.disabled = true; btn.textContent = '…';
    api('POST', '/v1/events/' + encodeURIComponent(id) + '/ack', {}).then(function (res) {
      markAcked(li, (res && res.ack) || { by: auth.me && auth.me.key_id });
      renderAlertSummary();
    }).catch(function (err) {
      btn.disabled = false; btn.textContent = T('alerts.ack');
      showNotice(T('notice.ack_failed', { why: err.status === 403 ? T('notice.ack_forbidden') :
        err.status === 404 ? T('notice.ack_not_found') : err.message }), 'warn');
    });
  }
  function trimAlerts(list) {
    // over the cap: drop the oldest routine (enter/exit) rows first so violations stay visible
    var excess = list.children.length - CFG.maxAlerts;
    if (excess <= 0) return;
    for (var n = list.lastElementChild; n && excess > 0;) {
      var prev = n.previousElementSibling;
      if (!n.classList.contains('violation')) { n.remove(); excess--; }
      n = prev;
    }
    while (excess > 0 && list.lastElementChild) { list.lastElementChild.remove(); excess--; }
  }

  // ------------------------------------------------------------------ sensors
  function onSensor(m) {
    if (!m || m.sensor_id == null) return;
    var id = String(m.sensor_id);
    var s = sensors.get(id);
    if (!s) { s = { id: id, values: {} }; sensors.set(id, s); }
    var tNew = parseTs(m.ts), tOld = parseTs(s.ts);
    if (m.sensor_kind) s.kind = m.sensor_kind;
    if (m.name) s.name = m.name;
    if (m.name_zh) s.name_zh = m.name_zh;
    if (m.ts != null && !(isFinite(tNew) && isFinite(tOld) && tNew < tOld)) {
      s.ts = m.ts; s.values = m.values || {};
      if (id === sensorSel.id) livePoints(m);
    }
    s.dirty = true;
    dirty.sensors = true;
    schedule();
  }
  function renderSensors() {
    var tbody = $('sensors').tBodies[0];
    var added = false;
    sensors.forEach(function (s) {
      if (!s.dirty) return;
      s.dirty = false;
      if (!s.row) {
        s.row = htmlEl('tr', 'sensor');
        s.row.setAttribute('data-sensor-id', s.id);
        htmlEl('td', 's-id mono', s.id, s.row);
        htmlEl('td', 's-kind muted', '', s.row);
        htmlEl('td', 's-values', '', s.row);
        htmlEl('td', 's-time mono muted', '', s.row);
        added = true;
      }
      var parts = Object.keys(s.values).map(function (k) { return metricLabel(k) + ' ' + fmtValue(s.values[k]); });
      s.row.childNodes[1].textContent = s.kind ? (I18N.has('sensor_kind.' + s.kind) ? T('sensor_kind.' + s.kind) : s.kind) : '';
      s.row.setAttribute('data-sensor-kind', s.kind || '');
      var nm = (I18N.lang === 'zh-CN' && s.name_zh) || s.name;
      if (nm) s.row.title = nm;
      s.row.childNodes[2].textContent = parts.join(' · ') || '—';
      s.row.childNodes[3].textContent = hms(s.ts);
    });
    if (added) {
      var ids = Array.from(sensors.keys()).sort();
      ids.forEach(function (id) { tbody.appendChild(sensors.get(id).row); });
    }
    $('sensors-empty').hidden = sensors.size > 0;
    $('sensors-summary').textContent = sensors.size ? T('sensors.summary', { n: sensors.size }) : '';
  }

  // ------------------------------------------------------------ sensor chart
  // The selected sensor's last hour: 1-minute buckets (avg line, min-max band) from the readings endpoint,
  // then live values appended as they arrive.
  var sensorSel = { id: null, metric: null, series: {}, status: '' };
  var CHART = { W: 400, H: 110, pad: 6, keepMs: 3600000 };
  function pushPoint(metric, p) {
    if (!isNum(p.v) || !isFinite(p.t)) return;
    var arr = sensorSel.series[metric] || (sensorSel.series[metric] = []);
    if (arr.length && arr[arr.length - 1].t >= p.t) return;
    arr.push(p);
    var cut = p.t - CHART.keepMs;
    while (arr.length && arr[0].t < cut) arr.shift();
  }
  function livePoints(m) {
    var t = parseTs(m.ts);
    Object.keys(m.values || {}).forEach(function (k) { var v = m.values[k]; pushPoint(k, { t: t, v: v, lo: v, hi: v }); });
    renderSensorDetail();
  }
  function openSensor(id) {
    sensorSel = { id: id, metric: null, series: {}, status: T('sensors.loading') };
    $('sensor-detail').hidden = false;
    $('sd-id').textContent = id;
    var s = sensors.get(id) || {};
    $('sd-kind').textContent = s.kind ? (I18N.has('sensor_kind.' + s.kind) ? T('sensor_kind.' + s.kind) : s.kind) : '';
    var rows = $('sensors').querySelectorAll('tr.sensor');
    for (var i = 0; i < rows.length; i++) rows[i].classList.toggle('selected', rows[i].getAttribute('data-sensor-id') === id);
    renderSensorDetail();
    var end = new Date(), start = new Date(end.getTime() - CHART.keepMs);
    fetchJSON('/v1/sensors/' + encodeURIComponent(id) + '/readings?bucket_s=60&start=' + encodeURIComponent(start.toISOString()) +
              '&end=' + encodeURIComponent(end.toISOString())).then(function (r) {
      if (sensorSel.id !== id) return;
      var live = sensorSel.series;
      sensorSel.series = {};
      ((r && r.buckets) || []).forEach(function (b) { pushPoint(b.metric, { t: parseTs(b.bucket), v: b.avg, lo: b.min, hi: b.max, unit: b.unit }); });
      ((r && r.readings) || []).forEach(function (x) { pushPoint(x.metric, { t: parseTs(x.ts), v: x.value, lo: x.value, hi: x.value, unit: x.unit }); });
      Object.keys(live).forEach(function (k) { live[k].forEach(function (p) { pushPoint(k, p); }); });
      sensorSel.status = '';
    }).catch(function (err) {
      if (sensorSel.id === id) sensorSel.status = T('sensors.history_unavailable', { why: err.message });
    }).then(function () { if (sensorSel.id === id) renderSensorDetail(); });
  }
  function closeSensor() {
    sensorSel = { id: null, metric: null, series: {}, status: '' };
    $('sensor-detail').hidden = true;
    var sel = $('sensors').querySelector('tr.selected');
    if (sel) sel.classList.remove('selected');
  }
  function renderSensorDetail() {
    if (!sensorSel.id) return;
    var s = sensors.get(sensorSel.id) || { values: {} };
    var metrics = Object.keys(sensorSel.series);
    Object.keys(s.values || {}).forEach(function (k) { if (isNum(s.values[k]) && metrics.indexOf(k) < 0) metrics.push(k); });
    metrics.sort();
    if (!sensorSel.metric || metrics.indexOf(sensorSel.metric) < 0) sensorSel.metric = metrics[0] || null;
    var tabs = $('sd-metrics');
    tabs.textContent = '';
    metrics.forEach(function (k) {
      var b = htmlEl('button', 'metric-tab' + (k === sensorSel.metric ? ' active' : ''), metricLabel(k), tabs);
      b.type = 'button';
      b.setAttribute('data-metric', k);
    });
    var chart = $('sd-chart');
    while (chart.firstChild) chart.removeChild(chart.firstChild);
    var pts = (sensorSel.series[sensorSel.metric] || []);
    chart.setAttribute('data-points', pts.length);
    chart.setAttribute('data-metric', sensorSel.metric || '');
    var status = sensorSel.status;
    if (pts.length) {
      var t0 = pts[0].t, t1 = pts[pts.length - 1].t, lo = Infinity, hi = -Infinity;
      pts.forEach(function (p) { lo = Math.min(lo, isNum(p.lo) ? p.lo : p.v); hi = Math.max(hi, isNum(p.hi) ? p.hi : p.v); });
      if (hi - lo < 1e-9) { hi += 1; lo -= 1; }
      var W = CHART.W, H = CHART.H, P = CHART.pad;
      var sx = function (t) { return t1 > t0 ? P + (t - t0) / (t1 - t0) * (W - 2 * P) : W / 2; };
      var sy = function (v) { return H - P - (v - lo) / (hi - lo) * (H - 2 * P); };
      var band = pts.map(function (p) { return r2(sx(p.t)) + ',' + r2(sy(isNum(p.hi) ? p.hi : p.v)); });
      for (var i = pts.length - 1; i >= 0; i--) band.push(r2(sx(pts[i].t)) + ',' + r2(sy(isNum(pts[i].lo) ? pts[i].lo : pts[i].v)));
      svgEl('polygon', { 'class': 'chart-band', points: band.join(' ') }, chart);
      svgEl('polyline', { 'class': 'chart-line', points: pts.map(function (p) { return r2(sx(p.t)) + ',' + r2(sy(p.v)); }).join(' '),
        'vector-effect': 'non-scaling-stroke' }, chart);
      var last = pts[pts.length - 1];
      var unit = '';
      for (var j = pts.length - 1; j >= 0 && !unit; j--) unit = pts[j].unit || '';
      status = (status ? status + ' · ' : '') + T('sensors.chart_status', { metric: metricLabel(sensorSel.metric),
        last: fmtValue(last.v) + (unit ? ' ' + unit : ''), lo: fmtValue(lo), hi: fmtValue(hi), from: hms(t0), to: hms(t1) });
    } else if (!status) {
      status = T('sensors.no_values');
    }
    $('sd-status').textContent = status;
  }

  // ------------------------------------------------------------------ replays
  var replayTimer = 0;
  function setupReplay() {
    if (!(auth.me && REPLAY_ROLES[auth.me.role])) return;
    $('replay-panel').hidden = false;
    fetchJSON('/v1/recordings').then(function (r) {
      var sel = $('replay-recording');
      sel.textContent = '';
      var items = (r && r.items) || [];
      items.forEach(function (it) {
        var o = htmlEl('option', null, it.name + (it.problem ? ' ' + T('replay.unreadable') : ''), sel);
        o.value = it.name;
        o.disabled = !!it.problem;
      });
      $('replay-summary').textContent = T('replay.summary', { n: items.length });
      $('replay-start').disabled = !items.length;
      pollReplays();
    }).catch(function (err) {
      $('replay-summary').textContent = err.status === 404 ? T('replay.unavailable') : T('replay.failed', { why: err.message });
      $('replay-start').disabled = true;
    });
    $('replay-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var body = { recording: $('replay-recording').value, rate: Number($('replay-rate').value) || 1,
                   evaluate: $('replay-evaluate').checked };
      $('replay-start').disabled = true;
      api('POST', '/v1/replays', body).then(function (job) {
        if (job && isReplayRoot(job.root)) watchFeed(job.root, job.id);   // show the replay as it happens
        pollReplays();
      }).catch(function (err) {
        showNotice(T('notice.replay_not_started', { why: err.message }), 'warn');
      }).then(function () { $('replay-start').disabled = false; });
    });
    $('replay-live').addEventListener('click', function () { watchFeed(null); pollReplays(); });
    $('replay-jobs').addEventListener('click', function (ev) {
      var b = ev.target.closest('button[data-action]');
      if (!b) return;
      var li = b.closest('li'), id = li.getAttribute('data-replay-id'), action = b.getAttribute('data-action');
      if (action === 'watch') { watchFeed(li.getAttribute('data-root'), id); pollReplays(); return; }
      if (action === 'live') { watchFeed(null); pollReplays(); return; }
      var req = action === 'stop' ? api('DELETE', '/v1/replays/' + encodeURIComponent(id))
        : api('POST', '/v1/replays/' + encodeURIComponent(id) + '/control', { action: action });
      req.then(pollReplays).catch(function (err) { showNotice(T('notice.replay_action_failed', { action: T('replay.' + action), why: err.message }), 'warn'); });
    });
  }
  function pollReplays() {
    clearTimeout(replayTimer);
    fetchJSON('/v1/replays').then(function (r) {
      var list = $('replay-jobs');
      list.textContent = '';
      var running = 0;
      ((r && r.items) || []).slice(0, 6).forEach(function (j) {
        var li = htmlEl('li', 'replay-job replay-' + cssIdent(j.state), null, list);
        li.setAttribute('data-replay-id', j.id);
        li.setAttribute('data-state', j.state);
        li.setAttribute('data-root', j.root || '');
        var paused = j.control && j.control.paused;
        htmlEl('span', 'mono', j.id, li);
        htmlEl('span', null, T('replay.state_' + j.state) + (paused ? ' ' + T('replay.paused') : '') + (isNum(j.fraction) ? ' ' + Math.round(j.fraction * 100) + '%' : ''), li);
        htmlEl('span', 'muted small', (j.request && j.request.recording) || j.source || '', li).title = T('replay.root', { root: j.root });
        if (j.state === 'running' || j.state === 'starting') {
          running++;
          var b1 = htmlEl('button', null, T(paused ? 'replay.resume' : 'replay.pause'), li); b1.type = 'button'; b1.setAttribute('data-action', paused ? 'resume' : 'pause');
          var b2 = htmlEl('button', null, T('replay.stop'), li); b2.type = 'button'; b2.setAttribute('data-action', 'stop');
        }
        if (isReplayRoot(j.root)) {
          var watching = feedRoot === j.root;
          if (watching) li.classList.add('watching');
          var b3 = htmlEl('button', null, T(watching ? 'replay.live' : 'replay.watch'), li); b3.type = 'button';
          b3.setAttribute('data-action', watching ? 'live' : 'watch');
          b3.title = watching ? T('replay.back_title') : T('replay.watch_title', { root: j.root });
        }
      });
      replayTimer = setTimeout(pollReplays, running ? 2000 : 10000);
    }).catch(function () { replayTimer = setTimeout(pollReplays, 15000); });
  }

  // ------------------------------------------------------------------- notice
  var noticeTimer = 0;
  function showNotice(text, level) {
    var el = $('notice');
    el.textContent = hms(Date.now()) + '  ' + text;
    el.className = 'notice' + (level ? ' ' + level : '');
    el.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(function () { el.classList.add('faded'); }, 20000);
  }

  // ------------------------------------------------------------------- health
  function pollHealth() {
    // a degraded API may answer 503 with the same body: show it rather than "unreachable"
    fetch('/v1/health', { cache: 'no-store', headers: { Accept: 'application/json' } }).then(function (r) {
      return r.json();
    }).then(function (h) {
      var db = $('db'), mq = $('mqtt');
      db.textContent = T('health.' + (h.database || h.db || 'unknown'));
      db.className = 'stat-value small' + (h.status === 'ok' ? '' : ' warn');
      db.title = T('health.api_status', { status: T('health.' + (h.status || 'unknown')) });
      mq.textContent = T('health.' + (h.mqtt || 'unknown'));
      mq.className = 'stat-value small' + (h.mqtt === 'connected' ? '' : ' warn');
    }).catch(function () {
      $('db').textContent = T('health.unreachable');
      $('db').className = 'stat-value small warn';
      $('mqtt').textContent = '?';
    });
  }

  // ---------------------------------------------------------------- feed root
  // null: the live feed. Otherwise a replay's topic root (engineers, admins): the map and the alert list
  // show only that replay until "back to live"; the live picture is reloaded then.
  var feedRoot = null, feedReplayId = null;
  function isReplayRoot(root) { return typeof root === 'string' && root.indexOf('replay/') === 0; }
  function clearPicture() {
    uavs.forEach(function (u) { if (u.g) u.g.remove(); if (u.trailEl) u.trailEl.remove(); });
    uavs.clear();
    pendingPositions = [];
    select(null);
    seenEvents.clear(); seenOrder.length = 0; pendingEvents = [];
    trafficLayer('clear');
    $('alerts').textContent = '';
    dirty.counts = true; dirty.detail = true;
    schedule();
  }
  function watchFeed(root, replayId) {
    root = root || null;
    if (root === feedRoot) return;
    feedRoot = root; feedReplayId = root ? (replayId || null) : null;
    clearPicture();
    document.body.classList.toggle('watching-replay', !!root);
    document.body.setAttribute('data-feed-root', root || '');
    var back = $('replay-live');
    if (back) back.hidden = !root;
    if (ws) { ws.onclose = null; try { ws.close(); } catch (err) { /* ignore */ } ws = null; }
    if (!root) resync();
    backoff = CFG.backoffMinMs;
    connect();
  }

  // ------------------------------------------------------------------ live ws
  var ws = null, backoff = CFG.backoffMinMs, reconnectTimer = 0, everConnected = false, skipped = 0;
  function setConn(state, text) {
    var el = $('conn');
    el.textContent = text || state;
    el.setAttribute('data-state', state);
    el.className = 'conn conn-' + state;
  }
  function connect() {
    clearTimeout(reconnectTimer);
    var q = [];
    if (auth.key) q.push('access_token=' + encodeURIComponent(auth.key));
    if (feedRoot) q.push('root=' + encodeURIComponent(feedRoot));
    q.push('lang=' + encodeURIComponent(I18N.lang));   // event descriptions in the page's language
    var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/v1/live' + (q.length ? '?' + q.join('&') : '');
    var mine = feedRoot;
    setConn('connecting', T(everConnected ? 'conn.reconnecting' : 'conn.connecting'));
    try { ws = new WebSocket(url); } catch (err) { scheduleReconnect(); return; }
    ws.onopen = function () {
      backoff = CFG.backoffMinMs;
      if (mine) setConn('replay', T('conn.replay', { id: feedReplayId || mine }));
      else setConn('live', T('conn.live'));
      if (everConnected && !mine) resync();   // fill the gap while we were away
      everConnected = true;
    };
    ws.onmessage = function (ev) {
      if (typeof ev.data !== 'string') return;
      var msg;
      try { msg = JSON.parse(ev.data); } catch (err) { return; }
      if (Array.isArray(msg)) msg.forEach(dispatch); else dispatch(msg);
    };
    ws.onclose = function (ev) {
      ws = null;
      if (ev.code === 4401) { keyRefused(); return; }   // key revoked: no point retrying with it
      if (mine && (ev.code === 4403 || ev.code === 1008)) {   // this replay feed is refused: back to live
        showNotice(T('notice.replay_refused', { why: ev.reason || ev.code }), 'warn');
        watchFeed(null);
        return;
      }
      if (ev.code === 1013) showNotice(T('notice.too_slow', { why: ev.reason || 'overloaded' }), 'warn');
      scheduleReconnect();
    };
    ws.onerror = function () { /* onclose follows */ };
  }
  function scheduleReconnect() {
    var delay = Math.round(backoff * (0.75 + Math.random() * 0.5));
    backoff = Math.min(CFG.backoffMaxMs, backoff * 2);
    var until = Date.now() + delay;
    var tick = function () {
      var left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      setConn('offline', T('conn.offline_retry', { s: left }));
    };
    tick();
    var iv = setInterval(tick, 1000);
    reconnectTimer = setTimeout(function () { clearInterval(iv); connect(); }, delay);
  }
  function dispatch(m) {
    if (!m || typeof m !== 'object') return;
    switch (m.type) {
      case 'position': onPosition(m, false); break;
      case 'event': onEvent(m); break;
      case 'sensor': onSensor(m); break;
      case 'traffic': trafficLayer('onTraffic', m); break;
      case 'zone_state': onZoneState(m); break;
      case 'zones_changed': scheduleZoneReload(); break;
      case 'notice':
        if (m.dropped_positions != null) {
          // the server coalesced positions for this slow client (latest per UAV kept): routine, keep quiet
          skipped += Number(m.dropped_positions) || 0;
          $('conn').title = T('conn.coalesced', { n: skipped });
        } else {
          showNotice(String(m.message != null ? m.message : JSON.stringify(m)), m.level);
        }
        break;
      default:
        if (m.type == null && m.uav_id != null && m.lon != null) onPosition(m, false);
    }
  }

  // -------------------------------------------------------------- REST loads
  function loadUavs() {
    return fetchJSON('/v1/uavs').then(function (arr) {
      if (feedRoot) return;   // watching a replay meanwhile: the live snapshot does not belong on the map
      if (!Array.isArray(arr)) arr = (arr && (arr.uavs || arr.items)) || [];
      arr.forEach(function (s) { onPosition(s, true); });
    }).catch(function (err) { showNotice(T('notice.load_failed', { what: T('notice.what_drones'), why: err.message }), 'warn'); });
  }
  function loadEvents() {
    return fetchJSON('/v1/events?limit=50').then(function (arr) {
      if (feedRoot) return;
      if (!Array.isArray(arr)) arr = (arr && (arr.events || arr.items)) || [];
      arr.slice().reverse().forEach(onEvent);
    }).catch(function (err) { showNotice(T('notice.load_failed', { what: T('notice.what_events'), why: err.message }), 'warn'); });
  }
  function loadSensors() {
    return fetchJSON('/v1/sensors').then(function (arr) {
      if (!Array.isArray(arr)) arr = (arr && arr.items) || [];
      arr.forEach(onSensor);
    }).catch(function (err) { if (err.status !== 404) showNotice(T('notice.load_failed', { what: T('notice.what_sensors'), why: err.message }), 'warn'); });
  }
  function resync() { loadUavs(); loadEvents(); trafficLayer('load'); }

  var zonesOk = false;
  function loadZones() {
    return fetchJSON('/v1/zones').then(function (fc) {
      zonesOk = true;
      return fc;
    });
  }

  // ------------------------------------------------------------ interaction
  function setupInteraction() {
    svg.addEventListener('wheel', function (ev) {
      ev.preventDefault();
      var r = svg.getBoundingClientRect();
      var dy = ev.deltaMode === 1 ? ev.deltaY * 16 : ev.deltaY;
      zoomAt(ev.clientX - r.left, ev.clientY - r.top, Math.exp(-dy * 0.0015));
    }, { passive: false });

    var drag = null;
    svg.addEventListener('pointerdown', function (ev) {
      if (ev.button !== 0) return;
      drag = { x: ev.clientX, y: ev.clientY, cx: view.cx, cy: view.cy, moved: false, target: ev.target, id: ev.pointerId };
    });
    svg.addEventListener('pointermove', function (ev) {
      if (!drag || ev.pointerId !== drag.id) return;
      var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (!drag.moved && Math.abs(dx) + Math.abs(dy) > 4) {
        drag.moved = true;
        try { svg.setPointerCapture(ev.pointerId); } catch (err) { /* ignore */ }
        svg.classList.add('dragging');
      }
      if (drag.moved) {
        view.cx = drag.cx - dx / view.k; view.cy = drag.cy - dy / view.k;
        markView();
      }
    });
    function end(ev) {
      if (!drag || ev.pointerId !== drag.id) return;
      var d = drag; drag = null;
      svg.classList.remove('dragging');
      if (d.moved || ev.type === 'pointercancel') return;
      if (window.Skylane.mapClick && proj) {
        var r = svg.getBoundingClientRect();
        var w = proj.inv((ev.clientX - r.left - view.tx) / view.k, (ev.clientY - r.top - view.ty) / view.k);
        if (window.Skylane.mapClick(w[0], w[1])) return;
      }
      var g = d.target && d.target.closest ? d.target.closest('.uav') : null;
      select(g ? g.getAttribute('data-uav-id') : null);
    }
    svg.addEventListener('pointerup', end);
    svg.addEventListener('pointercancel', end);
    svg.addEventListener('dblclick', function (ev) {
      var r = svg.getBoundingClientRect();
      zoomAt(ev.clientX - r.left, ev.clientY - r.top, ev.shiftKey ? 0.5 : 2);
    });
    $('zoom-in').addEventListener('click', function () { zoomAt(view.W / 2, view.H / 2, 1.6); });
    $('zoom-out').addEventListener('click', function () { zoomAt(view.W / 2, view.H / 2, 1 / 1.6); });
    $('zoom-fit').addEventListener('click', resetView);
    $('detail-close').addEventListener('click', function () { select(null); });
    $('sensors').addEventListener('click', function (ev) {
      var tr = ev.target.closest('tr.sensor');
      if (tr) openSensor(tr.getAttribute('data-sensor-id'));
    });
    $('sd-close').addEventListener('click', closeSensor);
    $('sd-metrics').addEventListener('click', function (ev) {
      var b = ev.target.closest('button[data-metric]');
      if (b) { sensorSel.metric = b.getAttribute('data-metric'); renderSensorDetail(); }
    });
    $('violations-only').addEventListener('change', function (ev) {
      $('alerts').classList.toggle('violations-only', ev.target.checked);
    });
    $('alerts').addEventListener('click', function (ev) {
      var btn = ev.target.closest('button.ack-btn');
      if (btn) { ackEvent(btn.closest('.alert'), btn); return; }
      var li = ev.target.closest('.alert');
      if (li && trafficLayer('focusAlert', li)) return;   // a pair event: the map centred on both aircraft
      var id = li && li.getAttribute('data-uav-id');
      if (id && uavs.has(id)) {
        select(id);
        var u = uavs.get(id);
        if (u.wx != null) { view.cx = u.wx; view.cy = u.wy; markView(); }
      }
    });
    // re-fit in the same frame as the layout change (no rAF hop, so no one-frame mismatch)
    if (window.ResizeObserver) new ResizeObserver(function () { if (proj) { dirty.view = false; applyView(); } }).observe($('map-wrap'));
    else window.addEventListener('resize', markView);
  }

  // --------------------------------------------------------------------- boot
  function tickClock() { $('clock').textContent = hms(Date.now()); }

  function boot() {
    svg = $('map');
    gWorld = $('world'); gBase = $('layer-base'); gZones = $('layer-zones'); gTrails = $('layer-trails');
    gLabels = $('layer-labels'); gUavs = $('layer-uavs');
    hatch = $('hatch-restricted');
    setupInteraction();
    tickClock(); setInterval(tickClock, 1000);
    pollHealth(); setInterval(pollHealth, CFG.healthEveryMs);
    setInterval(sweepStale, 2000);

    var pBase = fetchJSON('/static/basemap.geojson').catch(function () { return null; });
    var pZones = loadZones().catch(function (err) { showNotice(T('notice.load_failed', { what: T('notice.what_zones'), why: err.message }), 'warn'); return null; });
    Promise.all([pBase, pZones]).then(function (res) {
      var base = res[0], fc = res[1];
      var zb = fc ? geomBounds((fc.features || []).map(function (f) { return f.geometry; })) : null;
      proj = makeProjection(zb || DEFAULT_BOUNDS);
      var b = zb || DEFAULT_BOUNDS;
      var p0 = proj.fwd(b[0], b[3]), p1 = proj.fwd(b[2], b[1]);
      worldFit = [p0[0], p0[1], p1[0], p1[1]];
      if (base) renderBasemap(base);
      if (fc) renderZones(fc);
      resetView();
      mapReady = true;
      var early = pendingPositions; pendingPositions = [];
      early.forEach(function (x) { onPosition(x[0], x[1]); });
      // zones may change (temporary restrictions): refresh and reconcile by id
      setInterval(function () {
        loadZones().then(function (z) {
          if (!worldFit || !zb) {
            var nb = geomBounds((z.features || []).map(function (f) { return f.geometry; }));
            if (nb) { zb = nb; var a = proj.fwd(nb[0], nb[3]), c = proj.fwd(nb[2], nb[1]); worldFit = [a[0], a[1], c[0], c[1]]; resetView(); }
          }
          renderZones(z);
        }).catch(function () { /* keep the last good zones */ });
      }, zonesOk ? CFG.zonesEveryMs : 15000);
      return Promise.all([loadUavs(), loadEvents(), loadSensors(), trafficLayer('load')]);
    }).then(function () {
      $('alerts-empty').hidden = $('alerts').children.length > 0;
      connect();
    });
  }

  // -------------------------------------------------------------------- login
  // The key lives in sessionStorage (this tab only); /v1/me says whose it is. A server without /v1/me
  // (auth not deployed) is used without a key, as a viewer.
  function checkKey(key) {
    return fetch('/v1/me', { cache: 'no-store', headers: { Accept: 'application/json', Authorization: 'Bearer ' + key } })
      .then(function (r) {
        if (r.status === 404) return { key_id: null, role: 'viewer', owner: null, open: true };
        if (r.status === 401) throw new Error(T('login.not_accepted'));
        if (!r.ok) throw new Error(T('login.failed', { status: r.status }));
        return r.json();
      });
  }
  function showLogin(message) {
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    $('login-key').value = '';
    $('login-key').focus();
  }
  var booted = false;
  function signedIn(key, me) {
    auth.key = me.open ? null : key;
    auth.me = me;
    $('login').hidden = true;
    document.body.setAttribute('data-role', me.role);
    $('whoami-wrap').hidden = false;
    var who = $('whoami');
    who.textContent = T('role.' + me.role) + (me.owner ? ' · ' + me.owner : '');
    who.setAttribute('data-role', me.role);
    who.className = 'role-badge role-' + cssIdent(me.role);
    who.title = me.open ? T('login.open_server') : T('login.key_id', { id: me.key_id });
    if (booted) { location.reload(); return; }   // signed in again after a refusal: start clean
    booted = true;
    boot();
    setupReplay();
    if (window.SkylanePlanning) window.SkylanePlanning.start(me);   // operators and admins: flight planning
    if (window.SkylaneAlertSubscriptions) window.SkylaneAlertSubscriptions.start(me);   // admins; the report button
  }
  function keyRefused() {
    sessionStorage.removeItem(KEY_STORE);
    if (ws) { try { ws.onclose = null; ws.close(); } catch (err) { /* ignore */ } ws = null; }
    setConn('offline', T('conn.signed_out'));
    showLogin(T('login.refused'));
  }
  function start() {
    I18N.apply(document);
    Array.prototype.forEach.call(document.querySelectorAll('#lang-switch button[data-lang]'), function (b) {
      b.classList.toggle('active', b.getAttribute('data-lang') === I18N.lang);
      b.setAttribute('aria-pressed', String(b.getAttribute('data-lang') === I18N.lang));
      b.addEventListener('click', function () { I18N.set(b.getAttribute('data-lang')); });
    });
    $('login-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var key = $('login-key').value.trim();
      if (!key) return;
      $('login-submit').disabled = true;
      checkKey(key).then(function (me) {
        sessionStorage.setItem(KEY_STORE, key);
        signedIn(key, me);
      }).catch(function (err) { showLogin(err.message); }).then(function () { $('login-submit').disabled = false; });
    });
    $('logout').addEventListener('click', function () {
      sessionStorage.removeItem(KEY_STORE);
      location.reload();
    });
    var saved = sessionStorage.getItem(KEY_STORE);
    if (!saved) {
      fetch('/v1/me', { cache: 'no-store', headers: { Accept: 'application/json' } }).then(function (r) {
        if (r.status === 404) signedIn(null, { key_id: null, role: 'viewer', owner: null, open: true });
        else showLogin('');
      }).catch(function () { showLogin(T('login.unreachable')); });
      return;
    }
    checkKey(saved).then(function (me) { signedIn(saved, me); }).catch(function (err) {
      sessionStorage.removeItem(KEY_STORE);
      showLogin(err.message);
    });
  }

  // what the other layers and panels (plan-layer.js, planning.js) use of the map and the API
  window.Skylane = {
    api: api, svgEl: svgEl, htmlEl: htmlEl, parseTs: parseTs, hms: hms, showNotice: showNotice, zoneName: zoneName,
    zones: zones, auth: auth, view: view, toScreen: toScreen, placeAt: placeAt, markView: markView,
    proj: function () { return proj; }, onView: function (fn) { viewHooks.push(fn); },
    mapClick: null,   // set by a layer that takes clicks on the map (drawing a route); true: handled
    fitTo: function (lonlats) {
      if (!proj || !lonlats.length) return;
      var b = geomBounds([{ type: 'LineString', coordinates: lonlats }]);
      var a = proj.fwd(b[0], b[3]), c = proj.fwd(b[2], b[1]);
      view.cx = (a[0] + c[0]) / 2; view.cy = (a[1] + c[1]) / 2;
      view.zoom = Math.max(CFG.minZoom, Math.min(CFG.maxZoom, Math.min(
        (worldFit[2] - worldFit[0]) / Math.max(1e-6, c[0] - a[0]), (worldFit[3] - worldFit[1]) / Math.max(1e-6, c[1] - a[1])) * 0.6));
      markView();
    }
  };

  function ready() { I18N.load().then(start); }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', ready);
  else ready();
})();
