/*
 * The air picture on the map (issue 13 item 5): every aircraft Skylane tracks, fused from every source, and the
 * separation alerts between two of them. Screen-space marks in #layer-traffic and #layer-separation, re-placed on
 * every view change through Skylane.onView (as plan-layer.js does).
 *
 * What is drawn, and why
 * - Tracks come from the live feed's type=traffic messages (its snapshot of the retained states on connect, then
 *   each update) and GET /v1/traffic (at start, on a resync, and to reconcile: below).
 * - A registered drone whose own telemetry is live is already drawn by the UAV layer (app.js) from its positions:
 *   it is not drawn again; its symbol gets the fused track's source badges instead (g.track-badges inside its
 *   g.uav). Every other track is drawn here: manned aircraft with a plane glyph, or a helicopter's for rotorcraft,
 *   their callsign (else the ICAO address) and altitude in m and ft (AMSL); drones seen only by other sources
 *   (Remote ID, ADS-B, a vendor's feed; a registered drone whose telemetry is lost; for an operator, another
 *   operator's drone) with a quadcopter glyph unlike the UAV arrow; an unregistered drone also in a red dashed ring
 *   and labelled so. Badges: T telemetry, ADS-B, RID, other sources by name; greyed (struck) when lost.
 * - Stale (no update for CFG.staleMs, every source lost, or no position: the last one is kept): faded. The feed
 *   does not say when a retained state is withdrawn, so while some track is stale GET /v1/traffic is asked (at
 *   most every CFG.reconcileMs) and the tracks it no longer has are removed. A replay's feed has no REST: its
 *   tracks silent for CFG.dropMs are removed.
 * - Separation alerts: separation_loss and conflict_predicted (one event per aircraft; a pair is keyed by its kind
 *   and both track ids) draw a ring on each aircraft and the line between them, at their live positions when
 *   their tracks are known, else at the event's detail.positions: solid red for a loss (label: horizontal and
 *   vertical distance), dashed amber for a prediction (label: distance at closest approach and the seconds to it,
 *   counted down from when the event came). Cleared by the matching _end; also when a newer state of either
 *   aircraft no longer lists the condition in its alerts, or when neither aircraft is known CFG.pairGraceMs after
 *   the event. The legend's toggle hides the tracks and badges, never the separation alerts.
 *
 *   TrafficLayer.onTraffic(msg)        a type=traffic message            TrafficLayer.load()   GET /v1/traffic
 *   TrafficLayer.onEvent(event)        every new event (pair kinds draw and clear)
 *   TrafficLayer.decorateAlert(li, e)  an alert row of a pair or source event (other aircraft, distance)
 *   TrafficLayer.focusAlert(li)        a click on such a row: centre the map on the pair (true: handled)
 *   TrafficLayer.clear()               the feed switched (replay / live)
 */
(function () {
  'use strict';
  var SK = window.Skylane, T = I18N.t;
  var CFG = { staleMs: 12000, dropMs: 10 * 60000, reconcileMs: 10000, pairGraceMs: 60000, focusSpanM: 800, sweepMs: 1000 };
  var FT_PER_M = 1 / 0.3048;
  var PAIR = { separation_loss: 'loss', conflict_predicted: 'conflict' };
  var RANK = { telemetry: 0, adsb: 1, rid: 2 };
  var HELI = { rotorcraft: true, a7: true };
  var STORE = 'skylane.traffic';
  var GLYPHS = {
    plane: [['path', { d: 'M0,-11 L1.6,-4 L10,1.5 L10,3.5 L1.6,1 L1.1,6.5 L4,9 L4,10.5 L0,9.5 L-4,10.5 L-4,9 L-1.1,6.5 L-1.6,1 L-10,3.5 L-10,1.5 L-1.6,-4 Z' }]],
    heli: [['circle', { 'class': 'rotor', r: 9.5 }],
      ['path', { d: 'M0,-6 C2.4,-6 3.4,-3.4 3.4,-0.8 C3.4,2.2 2,4 0,4 C-2,4 -3.4,2.2 -3.4,-0.8 C-3.4,-3.4 -2.4,-6 0,-6 Z M-0.8,3.5 L0.8,3.5 L0.8,11 L-0.8,11 Z M-3,10.5 L3,10.5 L3,12 L-3,12 Z' }]],
    drone: [['path', { d: 'M-6,-6 L6,6 M6,-6 L-6,6 M0,-3 L0,-12' }], ['circle', { cx: -6, cy: -6, r: 2.8 }],
      ['circle', { cx: 6, cy: -6, r: 2.8 }], ['circle', { cx: -6, cy: 6, r: 2.8 }], ['circle', { cx: 6, cy: 6, r: 2.8 }],
      ['rect', { x: -2.2, y: -2.2, width: 4.4, height: 4.4 }]]
  };
  var tracks = new Map();   // track id -> {id, s (state), rx (received, ms), lon, lat, wx, wy, g | deco, ...}
  var pairs = new Map();    // pair key -> {key, kind, a, b, e (latest event), pos {track id: [lon, lat]}, rx, ts, g}
  var seen = new Map();     // pair key -> positions, kept after the pair ended (a click on its rows)
  var dirty = new Set(), rafId = 0, lastLoad = 0, loading = false;

  function $(id) { return document.getElementById(id); }
  function isNum(v) { return typeof v === 'number' && isFinite(v); }
  function live() { return !document.body.getAttribute('data-feed-root'); }
  function r1(v) { return Math.round(v * 10) / 10; }
  function screen(p) { var w = SK.proj().fwd(p[0], p[1]); return SK.toScreen(w[0], w[1]); }
  function kindLabel(k) { return I18N.has('kind.' + k) ? T('kind.' + k) : k; }
  function sourceName(n) { return I18N.has('traffic.source.' + n) ? T('traffic.source.' + n) : String(n); }
  function badgeText(n) { return I18N.has('traffic.badge.' + n) ? T('traffic.badge.' + n) : String(n).toUpperCase().slice(0, 6); }
  function dist(v) { return isNum(v) ? (v >= 1000 ? (v / 1000).toFixed(2) + ' km' : Math.round(v) + ' m') : '?'; }
  function schedule() { if (!rafId) rafId = requestAnimationFrame(flush); }

  // ------------------------------------------------------------------ tracks
  function sourcesLive(s) {
    var src = s.sources || {}, names = Object.keys(src);
    return !names.length || names.some(function (n) { return src[n] && !src[n].lost; });
  }
  function isStale(t, now) { return now - t.rx > CFG.staleMs || !isNum(t.s.lon) || !isNum(t.s.lat) || !sourcesLive(t.s); }
  function unregistered(s) {
    return s.kind !== 'manned' && (s.registered === false || (s.alerts || []).indexOf('unregistered_aircraft') >= 0);
  }
  function glyphOf(s) {
    if (s.kind !== 'manned') return 'drone';
    var id = s.identity || {};
    return HELI[String(id.category_name || '').toLowerCase()] || HELI[String(id.category || '').toLowerCase()] ? 'heli' : 'plane';
  }
  function name(s) {
    var id = s.identity || {}, call = id.callsign ? String(id.callsign).replace(/[\s_]+$/, '') : '';
    if (s.kind === 'manned') return call || (id.icao24 ? String(id.icao24).toUpperCase() : String(s.track_id));
    if (s.uav_id != null) return String(s.uav_id);
    if (call || id.serial) return call || String(id.serial);
    return /^drone-/.test(String(s.track_id)) ? T('traffic.other_operator') : String(s.track_id);
  }
  function altText(s) {
    if (!isNum(s.alt_m)) return '';
    var m = Math.round(s.alt_m) + ' m';
    return s.kind === 'manned' ? m + ' · ' + Math.round(s.alt_m * FT_PER_M) + ' ft' : m;
  }
  function uavSymbol(s) {   // the UAV layer's symbol of this drone, when its own telemetry is live
    var tel = s.sources && s.sources.telemetry;
    if (s.uav_id == null || !tel || tel.lost) return null;
    return document.querySelector('#layer-uavs g.uav[data-uav-id="' + CSS.escape(String(s.uav_id)) + '"]');
  }

  function onTraffic(m, fromRest) {
    if (!m || m.track_id == null) return;
    var id = String(m.track_id), t = tracks.get(id), now = Date.now();
    var tNew = SK.parseTs(m.ts);
    if (!t) { t = { id: id, s: {}, rx: 0 }; tracks.set(id, t); }
    else if (fromRest && isFinite(tNew) && !(tNew > SK.parseTs(t.s.ts))) return;   // nothing newer than the feed's
    t.s = m; t.rx = now;
    if (fromRest && isFinite(tNew) && now - tNew > CFG.staleMs) t.rx = now - CFG.staleMs - 1;   // an old snapshot
    if (isNum(m.lon) && isNum(m.lat)) { t.lon = m.lon; t.lat = m.lat; }
    dirty.add(id);
    pairs.forEach(function (p) {   // a newer state of either aircraft without the condition: it has ended
      if ((p.a === id || p.b === id) && tNew > p.ts && (m.alerts || []).indexOf(p.kind) < 0) removePair(p);
    });
    schedule();
  }

  function remove(t) {
    if (t.g) t.g.remove();
    if (t.deco) t.deco.remove();
    tracks.delete(t.id);
  }

  function render(t) {
    var s = t.s, host = uavSymbol(s);
    if (host) {   // drawn by the UAV layer: only its badges
      if (t.g) { t.g.remove(); t.g = null; }
      if (!t.deco || t.deco.parentNode !== host) {
        if (t.deco) t.deco.remove();
        t.deco = SK.svgEl('g', { 'class': 'track-badges', transform: 'translate(10,5)', 'data-track-id': t.id }, host);
        t.bsig = null;
      }
      badges(t, t.deco);
      return;
    }
    if (t.deco) { t.deco.remove(); t.deco = null; }
    if (t.lon == null || !SK.proj()) return;
    if (!t.g) build(t);
    var glyph = glyphOf(s), alerts = s.alerts || [], unreg = unregistered(s);
    t.stale = isStale(t, Date.now());
    if (t.glyph !== glyph) { drawGlyph(t.glyphEl, glyph); t.glyph = glyph; }
    if (isNum(s.track_deg)) t.glyphEl.setAttribute('transform', 'rotate(' + r1(s.track_deg) + ')');
    else t.glyphEl.removeAttribute('transform');
    t.g.setAttribute('class', 'tr tr-' + (s.kind === 'manned' ? 'manned' : 'drone') + ' tr-' + glyph +
      (unreg ? ' unregistered' : '') + (alerts.length ? ' alert' : '') + (t.stale ? ' stale' : ''));
    t.g.setAttribute('data-kind', s.kind || '');
    t.g.setAttribute('data-lon', t.lon); t.g.setAttribute('data-lat', t.lat);
    t.g.setAttribute('data-alt', isNum(s.alt_m) ? s.alt_m : '');
    t.g.setAttribute('data-alerts', alerts.join(' '));
    var nm = name(s);
    t.labelEl.textContent = unreg ? T('traffic.unregistered_label', { name: nm }) : nm;
    t.altEl.textContent = altText(s);
    var w = SK.proj().fwd(t.lon, t.lat);
    t.wx = w[0]; t.wy = w[1];
    SK.placeAt(t.g, t.wx, t.wy);
    badges(t, t.badgesEl);
    t.titleEl.textContent = title(t, nm, unreg);
  }

  function build(t) {
    var g = SK.svgEl('g', { 'class': 'tr', 'data-track-id': t.id }, $('layer-traffic'));
    SK.svgEl('rect', { 'class': 'tr-hit', x: -14, y: -15, width: 80, height: 40 }, g);
    SK.svgEl('circle', { 'class': 'tr-ring', r: 15 }, g);
    t.glyphEl = SK.svgEl('g', { 'class': 'tr-glyph' }, g);
    t.labelEl = SK.svgEl('text', { 'class': 'tr-label', x: 14, y: -5 }, g);
    t.altEl = SK.svgEl('text', { 'class': 'tr-alt', x: 14, y: 7 }, g);
    t.badgesEl = SK.svgEl('g', { 'class': 'track-badges', transform: 'translate(14,11)' }, g);
    t.titleEl = SK.svgEl('title', null, g);
    t.g = g; t.glyph = null; t.bsig = null;
  }
  function drawGlyph(parent, glyph) {
    parent.textContent = '';
    GLYPHS[glyph].forEach(function (p) { SK.svgEl(p[0], p[1], parent); });
  }

  function sourceNames(s) {
    return Object.keys(s.sources || {}).sort(function (a, b) {
      var ra = RANK[a] != null ? RANK[a] : 9, rb = RANK[b] != null ? RANK[b] : 9;
      return ra - rb || (a < b ? -1 : a > b ? 1 : 0);
    });
  }
  function badges(t, parent) {   // one badge per source: T, ADS-B, RID, ...; .lost when the source is lost
    var src = t.s.sources || {}, names = sourceNames(t.s);
    var sig = names.map(function (n) { return n + (src[n] && src[n].lost ? '-' : '+'); }).join(',');
    if (sig !== t.bsig || parent.childNodes.length !== names.length) {
      parent.textContent = '';
      var x = 0;
      names.forEach(function (n) {
        var text = badgeText(n), w = 6 + text.length * 5.6;
        var b = SK.svgEl('g', { 'class': 'badge' + (src[n] && src[n].lost ? ' lost' : ''), 'data-source': n,
          transform: 'translate(' + r1(x) + ',0)' }, parent);
        SK.svgEl('rect', { width: r1(w), height: 10, rx: 2 }, b);
        SK.svgEl('text', { x: r1(w / 2), y: 7.8, 'text-anchor': 'middle' }, b).textContent = text;
        SK.svgEl('title', null, b);
        x += w + 3;
      });
      t.bsig = sig;
    }
    Array.prototype.forEach.call(parent.childNodes, function (b) {
      var n = b.getAttribute('data-source'), v = src[n] || {};
      b.lastChild.textContent = T('traffic.badge_title', { source: sourceName(n),
        state: T(v.lost ? 'traffic.source_lost' : 'traffic.source_live'), age: isNum(v.age_s) ? r1(v.age_s) : '?' });
    });
  }
  function title(t, nm, unreg) {
    var s = t.s, id = s.identity || {}, src = s.sources || {}, cat = id.category_name || id.category;
    var lines = [T(s.kind === 'manned' ? 'traffic.kind_manned' : 'traffic.kind_drone') + ' ' + nm + ' (' + t.id + ')'];
    if (unreg) lines.push(T('traffic.unregistered'));
    if (cat) lines.push(T('traffic.category', { category: I18N.has('traffic.cat.' + cat) ? T('traffic.cat.' + cat) : cat }));
    if (id.icao24) lines.push('ICAO ' + String(id.icao24).toUpperCase());
    if (id.serial) lines.push(T('traffic.serial', { serial: id.serial }));
    lines.push(T('detail.altitude') + ' ' + (isNum(s.alt_m) ? Math.round(s.alt_m) + ' m / ' + Math.round(s.alt_m * FT_PER_M) +
      ' ft ' + T('alt_ref.AMSL') : '—') + ' · ' + T('detail.speed') + ' ' + (isNum(s.speed_mps) ? r1(s.speed_mps) + ' m/s' : '—') +
      ' · ' + T('detail.track') + ' ' + (isNum(s.track_deg) ? Math.round(s.track_deg) + '°' : '—'));
    lines.push(T('traffic.sources') + ' ' + (sourceNames(s).map(function (n) {
      return sourceName(n) + (src[n] && src[n].lost ? ' (' + T('traffic.source_lost') + ')' : '');
    }).join(', ') || '—'));
    if (s.position_source) lines.push(T('traffic.position_from', { source: sourceName(s.position_source) }));
    lines.push(T('detail.alerts') + ' ' + ((s.alerts || []).length ? s.alerts.map(kindLabel).join(', ') : T('detail.none')));
    lines.push(T('detail.last_fix') + ' ' + SK.hms(s.ts) + (t.stale ? ' · ' + T('traffic.stale') : ''));
    return lines.join('\n');
  }

  // ------------------------------------------------------- separation alerts
  function pairIds(e) {   // [subject track, other track] of a pair event
    var d = e.detail || {}, other = d.other || {};
    var a = d.track_id != null ? d.track_id : e.uav_id, b = other.track_id != null ? other.track_id : e.zone_id;
    return a == null || b == null ? null : [String(a), String(b)];
  }
  function pairKey(kind, ids) { return kind + '|' + ids.slice().sort().join('|'); }
  function positionsOf(e) {
    var out = {}, pos = (e.detail || {}).positions || {};
    Object.keys(pos).forEach(function (id) {
      var q = pos[id];
      if (q && isNum(q.lon) && isNum(q.lat)) out[id] = [q.lon, q.lat];
    });
    return out;
  }

  function onEvent(e) {
    if (!e || !e.kind) return;
    var kind = String(e.kind), base = kind.replace(/_end$/, ''), ids = PAIR[base] ? pairIds(e) : null;
    if (!ids) return;
    var key = pairKey(base, ids);
    if (kind !== base) { if (pairs.has(key)) removePair(pairs.get(key)); return; }
    var p = pairs.get(key), sorted = ids.slice().sort();
    if (!p) { p = { key: key, kind: base, a: sorted[0], b: sorted[1], pos: {}, rx: Date.now(), ts: SK.parseTs(e.ts) }; pairs.set(key, p); }
    p.e = e;
    Object.assign(p.pos, positionsOf(e));
    seen.set(key, p.pos);
    if (seen.size > 500) seen.delete(seen.keys().next().value);
    schedule();
  }
  function removePair(p) {
    if (p.g) p.g.remove();
    pairs.delete(p.key);
  }
  function endPoint(p, id) {
    var t = tracks.get(id);
    if (t && t.lon != null && isNum(t.s.lon)) return [t.lon, t.lat];
    return p.pos[id] || null;
  }
  function pairLabel(p) {
    var d = p.e.detail || {};
    if (p.kind === 'separation_loss') {
      return T('traffic.pair_loss', { h: dist(d.horizontal_m), v: isNum(d.vertical_m) ? Math.round(d.vertical_m) + ' m' : '?' });
    }
    var left = isNum(d.cpa_s) ? Math.max(0, Math.round(d.cpa_s - (Date.now() - p.rx) / 1000)) : '?';
    return T('traffic.pair_conflict', { cpa: dist(d.cpa_horizontal_m), s: left });
  }
  function drawPair(p) {
    var A = endPoint(p, p.a), B = endPoint(p, p.b);
    if (!A || !B || !SK.proj()) { if (p.g) p.g.setAttribute('display', 'none'); return; }
    if (!p.g) {
      p.g = SK.svgEl('g', { 'class': 'sep-pair sep-' + PAIR[p.kind], 'data-kind': p.kind, 'data-a': p.a, 'data-b': p.b,
        'data-key': p.key }, $('layer-separation'));
      p.line = SK.svgEl('line', { 'class': 'sep-line' }, p.g);
      p.ends = [p.a, p.b].map(function (id) { return SK.svgEl('circle', { 'class': 'sep-end', r: 17, 'data-track-id': id }, p.g); });
      p.text = SK.svgEl('text', { 'class': 'sep-label' }, p.g);
      p.title = SK.svgEl('title', null, p.g);
    }
    p.g.removeAttribute('display');
    var a = screen(A), b = screen(B), d = p.e.detail || {};
    p.line.setAttribute('x1', r1(a[0])); p.line.setAttribute('y1', r1(a[1]));
    p.line.setAttribute('x2', r1(b[0])); p.line.setAttribute('y2', r1(b[1]));
    [a, b].forEach(function (q, i) { p.ends[i].setAttribute('cx', r1(q[0])); p.ends[i].setAttribute('cy', r1(q[1])); });
    var len = Math.hypot(b[0] - a[0], b[1] - a[1]) || 1, nx = (a[1] - b[1]) / len, ny = (b[0] - a[0]) / len;
    if (ny > 0) { nx = -nx; ny = -ny; }   // the label beside the line's middle, on its upper side
    p.text.setAttribute('x', r1((a[0] + b[0]) / 2 + nx * 10)); p.text.setAttribute('y', r1((a[1] + b[1]) / 2 + ny * 10));
    p.text.setAttribute('text-anchor', nx > 0.2 ? 'start' : nx < -0.2 ? 'end' : 'middle');
    p.text.textContent = pairLabel(p);
    var tip = [p.e.description || kindLabel(p.kind), T('traffic.pair_minima', { h: dist(d.min_horizontal_m),
      v: isNum(d.min_vertical_m) ? Math.round(d.min_vertical_m) + ' m' : '?' })];
    if (d.cpa_at) tip.push(T('traffic.pair_cpa_at', { time: SK.hms(d.cpa_at), cpa: dist(d.cpa_horizontal_m) }));
    p.title.textContent = tip.join('\n');
  }

  // -------------------------------------------------------------- alert rows
  function decorateAlert(li, e) {
    var kind = String(e.kind || ''), base = kind.replace(/_end$/, ''), d = e.detail || {}, zone = li.querySelector('.a-zone');
    if (kind === 'source_lost' || kind === 'source_restored') {
      if (zone && d.source) zone.textContent = sourceName(d.source);
      return;
    }
    var ids = PAIR[base] ? pairIds(e) : null;
    if (!ids) return;
    li.classList.add('pair-alert');
    li.setAttribute('data-pair', JSON.stringify(ids));
    li.setAttribute('data-pair-key', pairKey(base, ids));
    li.setAttribute('data-positions', JSON.stringify(positionsOf(e)));
    if (kind === 'separation_loss') { li.classList.add('violation'); li.classList.remove('other-event'); }
    var other = d.other || {}, text = T('traffic.alert_with', { other: other.callsign || other.uav_id ||
      (/^drone-/.test(ids[1]) ? T('traffic.other_operator') : ids[1]) });
    if (isNum(d.horizontal_m)) text += ' · ' + dist(d.horizontal_m);
    if (kind === 'conflict_predicted' && isNum(d.cpa_s)) {
      text += ' · ' + T('traffic.alert_cpa', { cpa: dist(d.cpa_horizontal_m), s: Math.round(d.cpa_s) });
    }
    if (zone) zone.textContent = text;
  }
  function focusAlert(li) {
    var key = li && li.getAttribute('data-pair-key');
    if (!key) return false;
    var ids = JSON.parse(li.getAttribute('data-pair')), pos = JSON.parse(li.getAttribute('data-positions') || '{}');
    var p = pairs.get(key), cached = seen.get(key) || {};
    var pts = ids.map(function (id) {
      var t = tracks.get(id);
      return (p && endPoint(p, id)) || (t && t.lon != null ? [t.lon, t.lat] : null) || pos[id] || cached[id] || null;
    }).filter(Boolean);
    if (!pts.length || !SK.proj()) return false;
    var lon = 0, lat = 0;
    pts.forEach(function (q) { lon += q[0] / pts.length; lat += q[1] / pts.length; });
    var dLat = CFG.focusSpanM / 2 / 111320, dLon = dLat / Math.cos(lat * Math.PI / 180);
    SK.fitTo(pts.concat([[lon - dLon, lat - dLat], [lon + dLon, lat + dLat]]));
    if (p && p.g) {
      p.g.classList.add('focus');
      setTimeout(function () { if (p.g) p.g.classList.remove('focus'); }, 3000);
    }
    return true;
  }

  // ----------------------------------------------------------- flush, sweep
  function flush() {
    rafId = 0;
    if (!SK.proj()) return;   // the map is not ready yet: the sweep tries again
    dirty.forEach(function (id) { var t = tracks.get(id); if (t) render(t); });
    dirty.clear();
    pairs.forEach(drawPair);
  }
  function place() {
    tracks.forEach(function (t) { if (t.g && t.wx != null) SK.placeAt(t.g, t.wx, t.wy); });
    pairs.forEach(drawPair);
  }
  function sweep() {
    var now = Date.now(), anyStale = false;
    tracks.forEach(function (t, id) {
      if (now - t.rx > CFG.dropMs) { remove(t); return; }
      var stale = isStale(t, now);
      anyStale = anyStale || stale;
      var decorated = !!(t.deco && t.deco.isConnected);
      if (stale !== !!t.stale || (t.s.uav_id != null && decorated !== !!uavSymbol(t.s)) || (!t.g && !decorated)) dirty.add(id);
    });
    pairs.forEach(function (p) {
      if (now - p.rx > CFG.pairGraceMs && !tracks.has(p.a) && !tracks.has(p.b)) removePair(p);
    });
    if (anyStale && live() && now - lastLoad > CFG.reconcileMs) load();
    if (dirty.size || pairs.size) schedule();
  }

  function load() {   // the retained states over REST: the initial picture, and which tracks were withdrawn
    if (!live() || loading) return Promise.resolve();
    loading = true;
    var started = lastLoad = Date.now();
    return SK.api('GET', '/v1/traffic').then(function (r) {
      if (!live()) return;
      var have = new Set();
      ((r && r.items) || []).forEach(function (s) {
        if (s && s.track_id != null) { have.add(String(s.track_id)); onTraffic(s, true); }
      });
      tracks.forEach(function (t, id) { if (!have.has(id) && t.rx < started) remove(t); });
      schedule();
    }).catch(function () { /* no air picture on this server, or offline: the feed alone */ }).then(function () { loading = false; });
  }
  function clear() {
    tracks.forEach(remove);
    pairs.forEach(removePair);
    dirty.clear();
  }

  // ------------------------------------------------------------ legend, toggle
  function setupLegend() {
    Array.prototype.forEach.call(document.querySelectorAll('#legend svg[data-glyph]'), function (el) {
      drawGlyph(SK.svgEl('g', { 'class': 'tr-glyph' }, el), el.getAttribute('data-glyph'));
    });
    var box = $('traffic-toggle'), on = true;
    try { on = localStorage.getItem(STORE) !== '0'; } catch (err) { /* storage off */ }
    var apply = function (v) {
      document.body.classList.toggle('traffic-off', !v);
      if (box) { box.checked = v; box.setAttribute('aria-checked', String(v)); }
    };
    apply(on);
    if (box) {
      box.addEventListener('change', function () {
        apply(box.checked);
        try { localStorage.setItem(STORE, box.checked ? '1' : '0'); } catch (err) { /* storage off */ }
      });
    }
  }

  setupLegend();
  SK.onView(place);
  setInterval(sweep, CFG.sweepMs);
  window.TrafficLayer = { onTraffic: onTraffic, onEvent: onEvent, load: load, decorateAlert: decorateAlert,
    focusAlert: focusAlert, clear: clear, cfg: CFG, tracks: tracks, pairs: pairs };
})();
