/* The host's live screen: totals pushed over Socket.IO (/live), drawn over the server-rendered figures. */
(function () {
  "use strict";
  var L = window.Livesale;
  var data = L.pageData("live-data");
  var t = data.i18n;
  var lang = data.lang;
  var STALE_MS = 10000;
  var FEED_MAX = 8;
  var CHART_MINUTES = 30;

  // The server's clock, not the phone's: elapsed time and the chart use it.
  var skew = (data.now_ms || Date.now()) - Date.now();
  function now() { return Date.now() + skew; }

  var shown = data.totals;
  var status = data.status;
  var startedAt = data.started_at ? Date.parse(data.started_at) : null;
  var endedAt = status === "ended" ? Date.parse(data.totals.updated_at || "") || now() : null;
  var lastUpdate = now();
  var connected = false;
  var stock = {};
  data.products.forEach(function (p) { stock[p.sku] = p.stock; });

  var $ = function (id) { return document.getElementById(id); };
  var conn = $("conn"), connLabel = $("conn-label");
  var seen = {};
  data.feed.forEach(function (e) { seen[feedKey(e)] = true; });

  function feedKey(e) { return [e.at_ms, e.sku, e.quantity, e.region].join("|"); }

  function setText(node, text) { if (node && node.textContent !== text) node.textContent = text; }

  function elapsedSeconds() {
    if (startedAt === null) return 0;
    return ((endedAt || now()) - startedAt) / 1000;
  }

  function render(p) {
    setText($("total"), L.money(p.amount_fen, lang, true));
    $("total").setAttribute("data-fen", String(p.amount_fen));
    setText($("orders"), String(p.orders));
    setText($("items"), String(p.items));
    if (p.goal_fen && $("goal-fill")) {
      var pct = Math.min(100, Math.floor(p.amount_fen * 100 / p.goal_fen));
      $("goal-fill").style.width = pct + "%";
      $("goal-bar").setAttribute("aria-valuenow", String(pct));
      setText($("goal-pct"), pct + "%");
    }
    var rows = document.querySelectorAll("#products .product");
    Array.prototype.forEach.call(rows, function (row) {
      var sku = row.getAttribute("data-sku");
      var fig = p.by_product[sku] || { quantity: 0, amount_fen: 0 };
      setText(row.querySelector('[data-field="quantity"]'), String(fig.quantity));
      setText(row.querySelector('[data-field="amount"]'), L.money(fig.amount_fen, lang, true));
      var cell = row.querySelector('[data-field="stock"]');
      if (cell && stock[sku] !== null && stock[sku] !== undefined) {
        var left = stock[sku] - fig.quantity;
        row.classList.toggle("sold-out", left <= 0);
        cell.textContent = "";
        if (left <= 0) {
          cell.appendChild(L.el("span", "badge", t.sold_out));
        } else {
          cell.appendChild(L.el("span", "muted", t.left));
          cell.appendChild(document.createTextNode(" " + left));
        }
      }
    });
    if (p.status !== status) {
      status = p.status;
      if (status === "ended" && endedAt === null) endedAt = now();
      if (status === "live" && startedAt === null && p.started_at) startedAt = Date.parse(p.started_at);
    }
    if (p.timeline) drawChart(p.timeline);
    tick();
  }

  function drawChart(timeline) {
    var chart = $("chart");
    var byMinute = {};
    var last = 0;
    timeline.forEach(function (m) { byMinute[m.minute] = m.amount_fen; last = Math.max(last, m.minute); });
    var current = Math.max(Math.floor(elapsedSeconds() / 60), last);
    var first = current - CHART_MINUTES + 1;  // the last bar is now; minutes before the start stay empty
    var values = [];
    for (var m = first; m < first + CHART_MINUTES; m++) values.push([m, byMinute[m] || 0]);
    var max = Math.max.apply(null, values.map(function (v) { return v[1]; }).concat([1]));
    var bars = chart.children;
    values.forEach(function (v, i) {
      var bar = bars[i];
      if (!bar) { bar = L.el("span", "bar"); chart.appendChild(bar); }
      bar.style.height = (v[1] * 100 / max).toFixed(1) + "%";
      bar.title = v[0] >= 0 ? v[0] + "′ " + L.money(v[1], lang, false) : "";
      bar.classList.toggle("now", v[0] === current);
    });
  }

  function addFeed(entries) {
    var list = $("feed");
    var empty = list.querySelector(".empty");
    entries.forEach(function (e) {
      var key = feedKey(e);
      if (seen[key]) return;
      seen[key] = true;
      if (empty) { empty.remove(); empty = null; }
      var li = L.el("li", "fresh");
      li.appendChild(L.el("span", "f-what", e.quantity + " × " + e.name));
      if (e.region) {
        li.appendChild(document.createTextNode(" "));
        li.appendChild(L.el("span", "f-where", "— " + e.region));
      }
      list.insertBefore(li, list.firstChild);
    });
    while (list.children.length > FEED_MAX) list.removeChild(list.lastChild);
  }

  function tick() {
    if (startedAt !== null) setText($("elapsed"), L.clock(elapsedSeconds()));
    var secs = elapsedSeconds();
    if (status === "live" && secs >= 60 && data.planned_duration_min > 0) {
      var projected = Math.max(shown.amount_fen, Math.round(shown.amount_fen * data.planned_duration_min * 60 / secs));
      setText($("projection"), L.money(projected, lang, true));
    } else if (status !== "ended") {
      setText($("projection"), "—");
    }
    var state, label;
    if (!connected) { state = "stale"; label = t.reconnecting; }
    else if (status === "live" && now() - lastUpdate > STALE_MS) { state = "stale"; label = t.stale; }
    else if (status === "live") { state = "ok"; label = t.live; }
    else { state = "idle"; label = status === "ended" ? t.ended : t.not_started; }
    if (conn.getAttribute("data-state") !== state) conn.setAttribute("data-state", state);
    setText(connLabel, label);
  }

  // The first paint is the server's (sizes in data attributes: the page's CSP refuses inline
  // styles); draw the chart with the client's window once.
  if ($("goal-fill")) $("goal-fill").style.width = $("goal-fill").getAttribute("data-pct") + "%";
  Array.prototype.forEach.call(document.querySelectorAll("#chart .bar[data-h]"), function (bar) {
    bar.style.height = bar.getAttribute("data-h") + "%";
  });
  if (shown.timeline) drawChart(shown.timeline);

  // WebSocket only: one long-lived connection to one server process, so the
  // app needs no sticky sessions however many processes serve it. Where a
  // proxy blocks WebSockets the figures still move: see pollWhileDisconnected.
  var socket = window.io("/live", {
    transports: ["websocket"],
    reconnection: true,
    reconnectionDelay: 1000,
    reconnectionDelayMax: 30000,
    reconnectionAttempts: Infinity,
  });
  // Every (re)connect joins again (the server answers with a fresh snapshot);
  // a join refused for a while (Redis down…) is tried again until it passes.
  var room = window.livesaleJoin(socket, { session: data.session });
  socket.on("connect", function () {
    connected = true;
    lastUpdate = now();
    tick();
  });
  socket.on("disconnect", function () { connected = false; tick(); });
  socket.on("connect_error", function () { connected = false; tick(); });
  socket.on("totals", function (p) {
    lastUpdate = now();
    if (p.version >= shown.version) {
      shown = p;
      render(p);
    }
    tick();
  });
  socket.on("orders", addFeed);

  // While the push is down (or the room not joined), read the totals over plain
  // HTTP every 5 s (the indicator keeps saying so: figures move, but not live).
  var POLL_MS = 5000;
  function pollWhileDisconnected() {
    if ((connected && room.joined()) || status === "ended" || !window.fetch) return;
    window.fetch("/api/v1/sessions/" + encodeURIComponent(data.session) + "/totals",
                 { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (p) {
        if (p && !(connected && room.joined()) && p.version >= shown.version) { shown = p; render(p); }
      })
      .catch(function () { /* still offline: the next round tries again */ });
  }
  window.setInterval(pollWhileDisconnected, POLL_MS);

  window.setInterval(tick, 1000);
  window.livesaleHost = { socket: socket, shown: function () { return shown; } };
})();
