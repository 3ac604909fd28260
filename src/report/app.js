// botd report: renders the inlined document (the shape of `botd analyze --json`) with uPlot.
(function () {
  "use strict";

  var doc = JSON.parse(document.getElementById("botd-data").textContent);
  var models = Array.isArray(doc.models) ? doc.models : [];
  var scoring = doc.scoring || {};
  var RANK = { red: 0, yellow: 1, clear: 2 };
  var COLOURS = { red: "#d7263d", yellow: "#e0a800", clear: "#2e8b57" };

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "class") e.className = attrs[k];
      else if (k === "text") e.textContent = attrs[k];
      else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return e;
  }

  function addrKey(a) {
    // IPv4 numerically, IPv6 after it, as text.
    var p = String(a).split(".");
    if (p.length === 4) return "4" + p.map(function (x) { return ("00" + x).slice(-3); }).join(".");
    return "6" + a;
  }

  function fmtTime(ns) {
    return new Date(ns / 1e6).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  function fmtScore(x) {
    return typeof x === "number" && isFinite(x) ? x.toFixed(3) : "-";
  }

  var hosts = (Array.isArray(doc.hosts) ? doc.hosts : []).slice();
  hosts.sort(function (a, b) {
    var r = (RANK[a.level] === undefined ? 3 : RANK[a.level]) -
            (RANK[b.level] === undefined ? 3 : RANK[b.level]);
    if (r) return r;
    var s = (b.score || 0) - (a.score || 0);
    if (s) return s;
    return addrKey(a.address) < addrKey(b.address) ? -1 : 1;
  });

  var state = { host: 0, model: 0, pinned: null };
  // A link can pick the host and model: report.html#host=192.168.1.66&model=ctu-rf
  (location.hash || "").replace(/^#/, "").split("&").forEach(function (kv) {
    var p = kv.split("="), v = decodeURIComponent(p[1] || "");
    var i;
    if (p[0] === "host") {
      i = hosts.findIndex(function (h) { return h.address === v; });
      if (i >= 0) state.host = i;
    } else if (p[0] === "model") {
      i = models.findIndex(function (m) { return m.name === v; });
      if (i >= 0) state.model = i;
    }
  });
  var plots = [];

  // ---- header -------------------------------------------------------------------------------
  document.getElementById("source").textContent = doc.source ? String(doc.source) : "";
  var c = doc.counters || {};
  if (Array.isArray(c)) c = {};
  var counts = [];
  if (c.packets !== undefined) counts.push(c.packets + " packets");
  if (c.flows !== undefined) counts.push(c.flows + " flows");
  if (c.windows !== undefined) counts.push(c.windows + " windows");
  counts.push(hosts.length + " hosts");
  var nRed = hosts.filter(function (h) { return h.level === "red"; }).length;
  var nYellow = hosts.filter(function (h) { return h.level === "yellow"; }).length;
  counts.push(nRed + " red, " + nYellow + " yellow");
  document.getElementById("counts").textContent = counts.join(" · ");

  // ---- lists --------------------------------------------------------------------------------
  var modelList = document.getElementById("models");
  models.forEach(function (m, i) {
    var li = el("li", { class: "model", "data-model": m.name, "data-index": String(i) }, [
      el("span", { class: "name", text: m.name }),
      el("small", { text: (m.schema || "?") + " · threshold " + fmtScore(m.threshold) })
    ]);
    li.addEventListener("click", function () { state.model = i; state.pinned = null; render(); });
    modelList.appendChild(li);
  });
  if (!models.length) modelList.appendChild(el("li", { class: "empty", text: "no models" }));

  // The device behind an address (DHCP hostname, MAC), when botd learnt it.
  function deviceLabel(h) {
    var d = h.device;
    if (!d) return "";
    return (d.hostname ? d.hostname + " " : "") + (d.mac || "");
  }

  var hostList = document.getElementById("hosts");
  hosts.forEach(function (h, i) {
    var level = RANK[h.level] === undefined ? "clear" : h.level;
    var li = el("li", {
      class: "host " + level, "data-address": h.address, "data-level": h.level,
      "data-index": String(i), title: "score " + fmtScore(h.score) + ", " +
        (h.flagged_windows || 0) + " flagged windows" + (h.was_red ? ", was red" : "")
    }, [
      el("span", { class: "dot" }),
      el("span", { class: "address", text: h.address }),
      el("small", { class: "device", text: deviceLabel(h) }),
      el("small", { text: h.level + " " + fmtScore(h.score) })
    ]);
    li.addEventListener("click", function () { state.host = i; state.pinned = null; render(); });
    hostList.appendChild(li);
  });
  if (!hosts.length) hostList.appendChild(el("li", { class: "empty", text: "no home hosts" }));

  // ---- evidence -----------------------------------------------------------------------------
  function changesIn(h, w) {
    return (h.evidence || []).filter(function (a) { return a.window === w.window; });
  }

  function peersOf(h, w) {
    if (Array.isArray(w.peers) && w.peers.length) return w.peers;
    var ch = changesIn(h, w).filter(function (a) { return Array.isArray(a.peers) && a.peers.length; });
    return ch.length ? ch[ch.length - 1].peers : [];
  }

  function flagged(w) {
    return w.level !== "clear" || false;
  }

  function showWindow(idx) {
    var box = document.getElementById("evidence");
    var h = hosts[state.host];
    var w = h && h.windows && h.windows[idx];
    box.textContent = "";
    if (!w) {
      box.appendChild(el("span", { class: "hint",
        text: "Hover over a window for its evidence; click to pin it." }));
      return;
    }
    box.setAttribute("data-window", String(w.window));
    var head = el("div", {}, [
      el("strong", { text: "Window " + w.window + ": " }),
      fmtTime(w.start_ns).replace(/ UTC$/, "") + " – " + fmtTime(w.end_ns).slice(11) + " ",
      el("span", { class: "badge " + (RANK[w.level] === undefined ? "clear" : w.level), text: w.level }),
      state.pinned === idx ? " (pinned)" : ""
    ]);
    box.appendChild(head);
    var perModel = el("table", {}, [el("tr", {}, [
      el("th", { text: "model" }), el("th", { class: "num", text: "botnet flows" }),
      el("th", { class: "num", text: "of flows" })])]);
    models.forEach(function (m, i) {
      var n = (w.botnet || [])[i] || 0;
      perModel.appendChild(el("tr", {}, [
        el("td", { text: m.name + (n > 0 ? " ⚑" : "") }),
        el("td", { class: "num", text: String(n) }),
        el("td", { class: "num", text: String(w.flows) })]));
    });
    var left = el("div", {}, [perModel, el("div", {
      text: "value " + fmtScore(w.value) + ", score " + fmtScore(w.score) })]);
    changesIn(h, w).forEach(function (a) {
      left.appendChild(el("div", { text: "level " + a.previous + " → " + a.level + " (models " +
        ((a.models || []).join(", ") || "-") + ", " + a.botnet_flows + "/" + a.flows +
        " flows botnet)" }));
    });
    var peers = peersOf(h, w);
    var right = el("div", { class: "peers" });
    if (peers.length) {
      var t = el("table", {}, [el("tr", {}, [el("th", { text: "top peer" }),
        el("th", { class: "num", text: "flows" }), el("th", { class: "num", text: "bytes" })])]);
      peers.forEach(function (p) {
        var addr = String(p.addr).indexOf(":") >= 0 ? "[" + p.addr + "]" : p.addr;
        t.appendChild(el("tr", { class: "peer" }, [
          el("td", { class: "address", text: addr + ":" + p.port + (p.name ? " (" + p.name + ")" : "") }),
          el("td", { class: "num", text: String(p.flows) }),
          el("td", { class: "num", text: String(p.bytes) })]));
      });
      right.appendChild(t);
    } else {
      right.appendChild(el("span", { class: "hint", text: flagged(w)
        ? "Top peers are recorded with each level change."
        : "No botnet evidence in this window." }));
    }
    box.appendChild(el("div", { class: "evidence-grid" }, [left, right]));
  }

  // The window of the host's strongest evidence: its latest change to red, else its last change.
  function defaultWindow(h) {
    var ev = (h.evidence || []).slice().reverse();
    var a = ev.filter(function (e) { return e.level === "red"; })[0] || ev[0];
    if (!a) return -1;
    var ws = h.windows || [];
    for (var i = 0; i < ws.length; i++) if (ws[i].window === a.window) return i;
    return -1;
  }

  function windowTable(h) {
    var box = document.getElementById("windows");
    box.textContent = "";
    var rows = [];
    (h && h.windows || []).forEach(function (w, i) {
      if (flagged(w) || changesIn(h, w).length) rows.push(i);
    });
    if (!rows.length) {
      box.appendChild(el("span", { class: "empty", text: "none" }));
      return;
    }
    var t = el("table", {}, [el("tr", {}, [
      el("th", { text: "window" }), el("th", { text: "start" }), el("th", { text: "level" }),
      el("th", { class: "num", text: "score" }), el("th", { class: "num", text: "flows" })
    ].concat(models.map(function (m) { return el("th", { class: "num", text: m.name }); })))]);
    rows.forEach(function (i) {
      var w = h.windows[i];
      var tr = el("tr", { "data-window": String(w.window),
        class: state.pinned === i ? "pinned" : "" }, [
        el("td", { text: String(w.window) }), el("td", { text: fmtTime(w.start_ns) }),
        el("td", {}, [el("span", { class: "badge " + w.level, text: w.level })]),
        el("td", { class: "num", text: fmtScore(w.score) }),
        el("td", { class: "num", text: String(w.flows) })
      ].concat(models.map(function (m, k) {
        return el("td", { class: "num", text: String((w.botnet || [])[k] || 0) });
      })));
      tr.addEventListener("click", function () { pin(i); });
      t.appendChild(tr);
    });
    box.appendChild(t);
  }

  function pin(idx) {
    state.pinned = state.pinned === idx ? null : idx;
    showWindow(state.pinned === null ? idx : state.pinned);
    var rows = document.querySelectorAll("#windows tr[data-window]");
    var h = hosts[state.host];
    Array.prototype.forEach.call(rows, function (tr) {
      var w = h.windows[state.pinned];
      tr.className = w && tr.getAttribute("data-window") === String(w.window) ? "pinned" : "";
    });
  }

  // ---- plots --------------------------------------------------------------------------------
  function plotWidth() {
    var d = document.getElementById("detail");
    return Math.max(360, (d ? d.clientWidth : 800) - 26);
  }

  var utc = function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); };

  function hooks() {
    return {
      setCursor: [function (u) {
        if (state.pinned === null) {
          var idx = u.cursor.idx;
          showWindow(idx === null || idx === undefined ? defaultWindow(hosts[state.host]) : idx);
        }
      }],
      ready: [function (u) {
        u.over.addEventListener("click", function () {
          if (u.cursor.idx !== null && u.cursor.idx !== undefined) pin(u.cursor.idx);
        });
      }]
    };
  }

  function render() {
    plots.forEach(function (p) { p.destroy(); });
    plots = [];
    Array.prototype.forEach.call(document.querySelectorAll("#models li.model"), function (li, i) {
      li.classList.toggle("selected", i === state.model);
    });
    Array.prototype.forEach.call(document.querySelectorAll("#hosts li.host"), function (li, i) {
      li.classList.toggle("selected", i === state.host);
    });
    var h = hosts[state.host];
    var m = models[state.model];
    var title = document.getElementById("title");
    if (!h) {
      title.textContent = "No home hosts";
      return;
    }
    title.textContent = "";
    title.appendChild(el("span", { class: "address", text: h.address + " " }));
    if (h.device) title.appendChild(el("span", { class: "device", text: deviceLabel(h) + " " }));
    title.appendChild(el("span", { class: "badge " + h.level, text: h.level }));
    document.getElementById("summary").textContent = "score " + fmtScore(h.score) + " · " +
      (h.flagged_windows || 0) + " flagged windows" + (h.was_red ? " · was red" : "") +
      " · " + (h.windows || []).length + " windows in history" +
      (m ? " · model " + m.name : "");
    document.getElementById("flows-title").textContent = "Predicted botnet flows per window" +
      (m ? " (" + m.name + ")" : "");

    var ws = h.windows || [];
    var xs = ws.map(function (w) { return w.start_ns / 1e9; });
    var total = ws.map(function (w) { return w.flows; });
    var botnet = ws.map(function (w) { return (w.botnet || [])[state.model] || 0; });
    var score = ws.map(function (w) {
      return typeof w.score === "number" && isFinite(w.score) ? w.score : null;
    });
    var red = ws.map(function (w, i) { return w.level === "red" ? score[i] : null; });
    var yellow = ws.map(function (w, i) { return w.level === "yellow" ? score[i] : null; });
    var width = plotWidth();
    // Half a window step either side, so the first and last bars are whole.
    var pad = xs.length > 1 ? (xs[1] - xs[0]) / 2 : 75;
    var xScale = { time: true, range: function (u, lo, hi) {
      return lo === null || lo === undefined ? [0, 1] : [lo - pad, hi + pad];
    } };
    var sync = { key: "botd", setSeries: false };
    var bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.5, 36] }) : undefined;

    plots.push(new uPlot({
      width: width, height: 230, tzDate: utc,
      cursor: { sync: sync },
      scales: { x: xScale, y: { range: function (u, lo, hi) { return [0, Math.max(1, hi * 1.1)]; } } },
      axes: [{}, { label: "flows per window", size: 60 }],
      series: [
        { label: "window start (UTC)" },
        { label: "total flows", stroke: "#8a96a3", fill: "rgba(138,150,163,0.25)", paths: bars,
          points: { show: false } },
        { label: "botnet flows" + (m ? " (" + m.name + ")" : ""), stroke: COLOURS.red,
          fill: "rgba(215,38,61,0.55)", paths: bars, points: { show: false } }
      ],
      hooks: hooks()
    }, [xs, total, botnet], document.getElementById("plot-flows")));

    function flat(v) { return ws.map(function () { return v; }); }
    var series = [
      { label: "window start (UTC)" },
      { label: "score", stroke: "#1d5fbf", width: 2, points: { show: true, size: 4 } },
      { label: "red window", stroke: COLOURS.red, paths: function () { return null; },
        points: { show: true, size: 9, fill: COLOURS.red } },
      { label: "yellow window", stroke: COLOURS.yellow, paths: function () { return null; },
        points: { show: true, size: 9, fill: COLOURS.yellow } }
    ];
    var data = [xs, score, red, yellow];
    [["red", scoring.red, COLOURS.red, [8, 4]],
     ["red_rising", scoring.red_rising, "#f07c1a", [4, 4]],
     ["yellow_clear", scoring.yellow_clear, COLOURS.yellow, [2, 4]]].forEach(function (t) {
      if (typeof t[1] !== "number") return;
      series.push({ label: t[0] + " " + t[1], stroke: t[2], dash: t[3], width: 1.5,
        points: { show: false } });
      data.push(flat(t[1]));
    });
    plots.push(new uPlot({
      width: width, height: 200, tzDate: utc,
      cursor: { sync: sync },
      scales: { x: xScale, y: { range: [0, 1] } },
      axes: [{}, { label: "score", size: 60 }],
      series: series,
      hooks: hooks()
    }, data, document.getElementById("plot-score")));

    windowTable(h);
    showWindow(state.pinned === null ? defaultWindow(h) : state.pinned);
    document.body.setAttribute("data-host", h.address);
    document.body.setAttribute("data-model", m ? m.name : "");
  }

  render();
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      var w = plotWidth();
      plots.forEach(function (p) { p.setSize({ width: w, height: p.height }); });
    }, 100);
  });
  document.body.setAttribute("data-ready", "1");
})();
