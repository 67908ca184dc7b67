/*
 * The dashboard's languages: zh-CN and en. One JSON catalogue per language (/static/i18n/<lang>.json, keys
 * shared with nothing else); the language is the one chosen with the switch (localStorage 'skylane.lang'),
 * else the browser's (navigator.language: any zh-* is zh-CN), else English.
 *
 *   I18N.t(KEY, {name: value})       the text with {name} placeholders filled (a missing key shows the key)
 *   I18N.apply(root)                 [data-i18n] text, [data-i18n-title|-placeholder|-aria] attributes
 *   I18N.time(ts), I18N.dateTime(ts) times in Asia/Shanghai, whatever the browser's zone
 *   I18N.load().then(...)            the catalogue is fetched once before the dashboard starts
 * API requests send Accept-Language: I18N.lang, so the server's texts (errors, reasons, event descriptions)
 * come in the same language.
 */
(function () {
  'use strict';
  var STORE = 'skylane.lang';
  var LANGS = ['zh-CN', 'en'];
  var ZONE = 'Asia/Shanghai';

  function normalize(tag) {
    tag = String(tag || '').toLowerCase();
    if (tag.indexOf('zh') === 0) return 'zh-CN';
    if (tag.indexOf('en') === 0) return 'en';
    return null;
  }
  function chosen() {
    var saved = null;
    try { saved = normalize(localStorage.getItem(STORE)); } catch (err) { /* storage off */ }
    if (saved) return saved;
    var prefs = (navigator.languages && navigator.languages.length) ? navigator.languages : [navigator.language];
    for (var i = 0; i < prefs.length; i++) { var n = normalize(prefs[i]); if (n) return n; }
    return 'en';
  }

  var I18N = { lang: chosen(), langs: LANGS, cat: {}, fallback: {} };
  I18N.t = function (key, params) {
    var text = I18N.cat[key];
    if (text == null) text = I18N.fallback[key];
    if (text == null) return key;
    if (params) text = text.replace(/\{(\w+)\}/g, function (m, k) { return params[k] != null ? String(params[k]) : m; });
    return text;
  };
  I18N.has = function (key) { return I18N.cat[key] != null; };
  I18N.apply = function (root) {
    root = root || document;
    var each = function (sel, fn) { Array.prototype.forEach.call(root.querySelectorAll(sel), fn); };
    each('[data-i18n]', function (el) { el.textContent = I18N.t(el.getAttribute('data-i18n')); });
    each('[data-i18n-title]', function (el) { el.title = I18N.t(el.getAttribute('data-i18n-title')); });
    each('[data-i18n-placeholder]', function (el) { el.placeholder = I18N.t(el.getAttribute('data-i18n-placeholder')); });
    each('[data-i18n-aria]', function (el) { el.setAttribute('aria-label', I18N.t(el.getAttribute('data-i18n-aria'))); });
    document.documentElement.lang = I18N.lang;
    document.title = I18N.t('app.title');
  };
  I18N.set = function (lang) {   // remembered; the page reloads so every text is drawn again in it
    lang = normalize(lang) || 'en';
    try { localStorage.setItem(STORE, lang); } catch (err) { /* storage off */ }
    if (lang !== I18N.lang) location.reload();
  };
  function fetchCat(lang) {
    return fetch('/static/i18n/' + lang + '.json', { cache: 'no-cache' }).then(function (r) {
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    });
  }
  I18N.load = function () {
    var own = fetchCat(I18N.lang);
    var en = I18N.lang === 'en' ? own : fetchCat('en').catch(function () { return {}; });
    return Promise.all([own, en]).then(function (res) {
      I18N.cat = res[0]; I18N.fallback = res[1];
    }).catch(function () {
      return fetchCat('en').then(function (c) { I18N.cat = c; I18N.fallback = c; I18N.lang = 'en'; }).catch(function () {});
    });
  };

  // ------------------------------------------------------------------ times
  var parts = {};
  function formatter(withDate) {
    var key = withDate ? 'd' : 't';
    if (!parts[key]) {
      var opts = { timeZone: ZONE, hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' };
      if (withDate) { opts.year = 'numeric'; opts.month = '2-digit'; opts.day = '2-digit'; }
      parts[key] = new Intl.DateTimeFormat('en-CA', opts);
    }
    return parts[key];
  }
  function pieces(ms, withDate) {
    var out = {};
    formatter(withDate).formatToParts(new Date(ms)).forEach(function (p) { out[p.type] = p.value; });
    return out;
  }
  I18N.time = function (ms) {   // HH:MM:SS in Asia/Shanghai
    if (!isFinite(ms)) return '--:--:--';
    var p = pieces(ms, false);
    return p.hour + ':' + p.minute + ':' + p.second;
  };
  I18N.dateTime = function (ms) {   // YYYY-MM-DD HH:MM:SS in Asia/Shanghai
    if (!isFinite(ms)) return '—';
    var p = pieces(ms, true);
    return p.year + '-' + p.month + '-' + p.day + ' ' + p.hour + ':' + p.minute + ':' + p.second;
  };
  // a <input type="datetime-local"> value read as Asia/Shanghai wall time (UTC+8, no daylight saving)
  I18N.fromLocalInput = function (value) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(value || '');
    if (!m) return NaN;
    return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4] - 8, +m[5], +(m[6] || 0));
  };
  I18N.toLocalInput = function (ms) {
    var p = pieces(ms, true);
    return p.year + '-' + p.month + '-' + p.day + 'T' + p.hour + ':' + p.minute;
  };

  window.I18N = I18N;
})();
