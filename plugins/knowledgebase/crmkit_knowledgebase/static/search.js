/* Offline search for the crmkit knowledge base site: plain JS, no external assets.
 * KB_INDEX (from search-index.js) lists {url, title, category, tags, text} per article.
 * A query's words must all match: a CJK run as a substring, a word as a prefix of a word. */
(function () {
  "use strict";
  var CJK = /[\u2e80-\u2fdf\u3040-\u30ff\u3100-\u312f\u31a0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+/g;
  function fold(s) {
    return s.normalize("NFKC").toLowerCase().normalize("NFD").replace(/[\u0300-\u036f]/g, "");
  }
  function terms(query) {
    var q = fold(query), out = [], m;
    var cjk = q.match(CJK) || [];
    cjk.forEach(function (run) { out.push({cjk: true, text: run}); });
    var rest = q.replace(CJK, " ").match(/[\p{L}\p{N}]+/gu) || [];
    rest.forEach(function (w) { out.push({cjk: false, text: w}); });
    return out;
  }
  function words(s) { return s.replace(CJK, " ").match(/[\p{L}\p{N}]+/gu) || []; }
  function prepare(doc) {
    if (!doc._t) {
      doc._title = fold(doc.title);
      doc._t = fold(doc.title + " " + doc.tags.join(" ") + " " + doc.category + " " + doc.text);
      doc._w = words(doc._t);
      doc._tw = words(doc._title);
    }
    return doc;
  }
  function matches(doc, term) {
    if (term.cjk) {
      var n = 0, at = doc._t.indexOf(term.text);
      while (at !== -1) { n++; at = doc._t.indexOf(term.text, at + term.text.length); }
      return n + (doc._title.indexOf(term.text) !== -1 ? 5 : 0);
    }
    var hits = 0;
    doc._w.forEach(function (w) { if (w.indexOf(term.text) === 0) hits++; });
    doc._tw.forEach(function (w) { if (w.indexOf(term.text) === 0) hits += 5; });
    return hits;
  }
  function search(query) {
    var ts = terms(query), results = [];
    if (!ts.length) return results;
    (window.KB_INDEX || []).forEach(function (doc) {
      prepare(doc);
      var score = 0;
      for (var i = 0; i < ts.length; i++) {
        var s = matches(doc, ts[i]);
        if (!s) return;
        score += s;
      }
      results.push({doc: doc, score: score});
    });
    results.sort(function (a, b) { return b.score - a.score || (a.doc.title < b.doc.title ? -1 : 1); });
    return results;
  }
  function snippet(doc, ts) {
    var text = doc.text, low = fold(text), at = -1;
    for (var i = 0; i < ts.length && at === -1; i++) at = low.indexOf(ts[i].text);
    var start = Math.max(0, at - 40);
    var space = text.lastIndexOf(" ", start);
    if (start > 0 && space !== -1 && start - space < 20) start = space + 1;  // begin at a word
    return (start > 0 ? "…" : "") + text.slice(start, start + 160) + (text.length > start + 160 ? "…" : "");
  }
  // Fill `p` with `text`, query terms wrapped in <mark> (text nodes only: no markup injected).
  function highlight(p, text, ts) {
    var low = text.toLowerCase(), pos = 0;  // keeps offsets, unlike NFKC ("…" → "...")
    while (pos < text.length) {
      var best = -1, len = 0;
      ts.forEach(function (t) {
        var at = low.indexOf(t.text, pos);
        if (at !== -1 && (best === -1 || at < best)) { best = at; len = t.text.length; }
      });
      if (best === -1 || low.length !== text.length) break;  // folding changed lengths: plain
      p.appendChild(document.createTextNode(text.slice(pos, best)));
      var mark = document.createElement("mark");
      mark.textContent = text.slice(best, best + len);
      p.appendChild(mark);
      pos = best + len;
    }
    p.appendChild(document.createTextNode(text.slice(pos)));
  }
  function render(query, list, count) {
    while (list.firstChild) list.removeChild(list.firstChild);
    var results = search(query), ts = terms(query);
    results.slice(0, 50).forEach(function (r) {
      var li = document.createElement("li"), a = document.createElement("a"), p = document.createElement("p");
      a.href = r.doc.url;
      a.className = "result";
      a.textContent = r.doc.title;
      highlight(p, snippet(r.doc, ts), ts);
      li.appendChild(a);
      li.appendChild(p);
      list.appendChild(li);
    });
    if (count) count.textContent = query ? results.length + " result(s) for “" + query + "”" : "";
  }
  window.kbSearch = search;
  document.addEventListener("DOMContentLoaded", function () {
    var input = document.getElementById("q"), list = document.getElementById("results");
    var count = document.getElementById("count");
    if (!input || !list) return;
    var q = new URLSearchParams(window.location.search).get("q") || "";
    input.value = q;
    render(q, list, count);
    input.addEventListener("input", function () { render(input.value, list, count); });
  });
})();
