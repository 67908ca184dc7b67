/*
 * Map layer of the flight plan (operators): the route being planned, and the decision drawn where it
 * happens. World-space shapes go in #layer-plan (scaled with the map), screen-space marks in
 * #layer-plan-marks (repositioned on every view change through Skylane.onView).
 *
 *   PlanLayer.draft(points)        the route being drawn or read: [[lon, lat], ...]
 *   PlanLayer.decision(resp)       the API's answer: the route; per reason (index i) the piece from its entry to
 *                                  its exit (.plan-reason[data-reason]), entry and exit marks (.plan-entry,
 *                                  .plan-exit) and its zone outlined (path.zone.plan-hit); an approval as its 4D
 *                                  volume (.plan-volume: the route's lateral tolerance as a band, altitudes and
 *                                  times in its label)
 *   PlanLayer.focus(i)             emphasise reason i (hover in the panel)
 *   PlanLayer.clear()
 */
(function () {
  'use strict';
  var SK = window.Skylane, T = I18N.t;
  var LATERAL_M = 50;   // the clearance's lateral tolerance (airspace.separation.Tolerances)
  var marks = [];       // {el, lon, lat} placed in screen space
  var hit = [];         // zone paths outlined

  function world() { return document.getElementById('layer-plan'); }
  function overlay() { return document.getElementById('layer-plan-marks'); }
  function xy(lon, lat) { return SK.proj().fwd(lon, lat); }
  function pts(list) {
    return list.map(function (p) { var w = xy(p[0], p[1]); return Math.round(w[0] * 100) / 100 + ',' + Math.round(w[1] * 100) / 100; }).join(' ');
  }
  function place() {
    marks.forEach(function (m) { var w = xy(m.lon, m.lat); SK.placeAt(m.el, w[0], w[1]); });
  }
  function mark(cls, lon, lat, label, attrs) {
    var g = SK.svgEl('g', Object.assign({ 'class': cls }, attrs || {}), overlay());
    SK.svgEl('circle', { r: cls.indexOf('plan-wp') >= 0 ? 4 : 6 }, g);
    if (label != null) { var t = SK.svgEl('text', { x: 8, y: -6 }, g); t.textContent = label; }
    marks.push({ el: g, lon: lon, lat: lat });
    return g;
  }
  function clear() {
    world().textContent = ''; overlay().textContent = ''; marks = [];
    hit.forEach(function (p) { p.classList.remove('plan-hit'); }); hit = [];
  }
  function line(cls, list, attrs) {
    return SK.svgEl('polyline', Object.assign({ 'class': cls, points: pts(list), 'vector-effect': 'non-scaling-stroke',
      fill: 'none' }, attrs || {}), world());
  }
  function draft(points) {
    clear();
    if (!SK.proj() || !points.length) return;
    line('plan-route draft', points);
    points.forEach(function (p, i) { mark('plan-wp', p[0], p[1], String(i), { 'data-wp': i }); });
    place();
  }
  function decision(resp) {
    clear();
    if (!SK.proj() || !resp || !resp.route) return;
    var route = resp.route.map(function (p) { return [p.lon, p.lat]; });
    line('plan-route plan-' + resp.decision, route);
    route.forEach(function (p, i) { mark('plan-wp', p[0], p[1], String(i), { 'data-wp': i }); });
    (resp.reasons || []).forEach(function (r, i) {
      var z = r.zone_id != null ? SK.zones.get(String(r.zone_id)) : null;
      if (z) { z.path.classList.add('plan-hit'); hit.push(z.path); }
      if (!r.entry || r.entry.lon == null) return;
      var piece = [[r.entry.lon, r.entry.lat]];
      var segs = r.segments || (r.segment != null ? [r.segment, r.segment] : null);
      if (segs) for (var k = segs[0] + 1; k <= segs[1] && k < route.length; k++) piece.push(route[k]);
      if (r.exit && r.exit.lon != null) piece.push([r.exit.lon, r.exit.lat]);
      line('plan-reason', piece, { 'data-reason': i, 'data-code': r.code });
      mark('plan-entry', r.entry.lon, r.entry.lat, T('plan.entry', { n: i + 1 }), { 'data-reason': i });
      if (r.exit && r.exit.lon != null && (r.exit.lon !== r.entry.lon || r.exit.lat !== r.entry.lat)) {
        mark('plan-exit', r.exit.lon, r.exit.lat, T('plan.exit', { n: i + 1 }), { 'data-reason': i });
      }
    });
    if (resp.decision === 'approved') volume(resp, route);
    place();
  }
  function volume(resp, route) {   // the approved 4D volume: the path widened by the lateral tolerance, its band and times
    var width = 2 * LATERAL_M / SK.proj().metresPerUnit;
    var alts = resp.route.map(function (p) { return p.alt_m; });
    var lo = Math.min.apply(null, alts), hi = Math.max.apply(null, alts);
    var ref = resp.source && resp.source.alt_ref ? resp.source.alt_ref : (resp.alt_ref || '');
    var band = SK.svgEl('polyline', { 'class': 'plan-volume', points: pts(route), fill: 'none',
      'stroke-width': width, 'data-alt-lo': lo, 'data-alt-hi': hi, 'data-start': resp.start_time, 'data-end': resp.end_time }, world());
    world().insertBefore(band, world().firstChild);
    var mid = route[Math.floor(route.length / 2)];
    var label = T('plan.volume', { lo: Math.round(lo), hi: Math.round(hi), ref: I18N.has('alt_ref.' + ref) ? T('alt_ref.' + ref) : ref,
      from: I18N.dateTime(SK.parseTs(resp.start_time)), to: I18N.time(SK.parseTs(resp.end_time)) });
    var g = mark('plan-volume-label', mid[0], mid[1], label);
    g.querySelector('circle').setAttribute('r', 0);
  }
  function focus(i) {
    Array.prototype.forEach.call(document.querySelectorAll('#layer-plan [data-reason], #layer-plan-marks [data-reason]'), function (el) {
      el.classList.toggle('focus', i != null && el.getAttribute('data-reason') === String(i));
    });
  }
  SK.onView(place);
  window.PlanLayer = { draft: draft, decision: decision, focus: focus, clear: clear };
})();
