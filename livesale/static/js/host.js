/* The host's live screen: totals pushed over Socket.IO (/live), drawn over the server-rendered figures. */
(function () {
  "use strict";
  var L = window.Livesale;
  var M = window.LivesaleMoney;
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
  // An ended session's run is fixed: its start plus its elapsed seconds as the server counted them.
  var endedAt = status === "ended" && startedAt !== null ? startedAt + data.elapsed_s * 1000 : null;
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

  /* The goal bar is drawn to the larger of goal and total: beyond the goal the goal
   * becomes a mark on the bar and the overshoot a second segment after it. */
  function drawGoal(amount, goal) {
    var bar = $("goal-bar");
    if (!bar || !goal) return;
    var scale = Math.max(amount, goal);
    var reached = amount >= goal;
    $("goal-fill").style.width = (Math.min(amount, goal) * 100 / scale).toFixed(2) + "%";
    $("goal-over").style.width = (reached ? (amount - goal) * 100 / scale : 0).toFixed(2) + "%";
    $("goal-mark").style.insetInlineStart = (goal * 100 / scale).toFixed(2) + "%";  // from the right in Uyghur
    var tenths = Math.round(amount * 1000 / goal) / 10;
    bar.setAttribute("aria-valuenow", String(tenths));
    bar.setAttribute("aria-valuemax", String(Math.max(100, tenths)));
    var text = M.percent(amount, goal, lang);
    bar.setAttribute("aria-valuetext", text);
    setText($("goal-pct"), text);
    $("goal").classList.toggle("exceeded", reached);
    $("goal-state").hidden = !reached;
  }

  /* The goal passed while people watch: a banner for a few seconds (still, without motion if so asked). */
  function celebrate() {
    var banner = $("celebrate");
    if (!banner) return;
    banner.hidden = false;
    banner.classList.remove("go");
    void banner.offsetWidth;  // restart the animation should it still be running
    banner.classList.add("go");
    window.clearTimeout(celebrate.timer);
    celebrate.timer = window.setTimeout(function () { banner.hidden = true; banner.classList.remove("go"); }, 6000);
  }

  function drawStock(row, sku, quantity) {
    var cell = row.querySelector('[data-field="stock"]');
    if (!cell || stock[sku] === null || stock[sku] === undefined) return;
    var left = stock[sku] - quantity;
    row.classList.toggle("oversold", left < 0);
    row.classList.toggle("sold-out", left === 0);
    var key = left < 0 ? "over:" + left : left === 0 ? "out" : "left:" + left;
    if (cell.getAttribute("data-shown") === key) return;
    cell.setAttribute("data-shown", key);
    cell.textContent = "";
    if (left < 0) {
      cell.appendChild(L.el("span", "p-badge over", t.oversold.replace("{n}", String(-left))));
    } else if (left === 0) {
      cell.appendChild(L.el("span", "p-badge out", t.sold_out));
    } else {
      cell.appendChild(L.el("span", "muted", t.left));
      cell.appendChild(document.createTextNode(" " + left));
    }
  }

  function render(p, previous) {
    setText($("total"), L.money(p.amount_fen, lang, true));
    $("total").setAttribute("data-fen", String(p.amount_fen));
    setText($("orders"), String(p.orders));
    setText($("items"), String(p.items));
    if (p.goal_fen) {
      drawGoal(p.amount_fen, p.goal_fen);
      if (previous && previous.amount_fen < p.goal_fen && p.amount_fen >= p.goal_fen) celebrate();
    }
    var rows = document.querySelectorAll("#products .product");
    Array.prototype.forEach.call(rows, function (row) {
      var sku = row.getAttribute("data-sku");
      var fig = p.by_product[sku] || { quantity: 0, amount_fen: 0 };
      setText(row.querySelector('[data-field="quantity"]'), String(fig.quantity));
      setText(row.querySelector('[data-field="amount"]'), L.money(fig.amount_fen, lang, true));
      drawStock(row, sku, fig.quantity);
    });
    if (p.status !== status) {
      status = p.status;
      if (status === "ended" && endedAt === null) { endedAt = now(); showEnded(); }
      if (status === "live" && startedAt === null && p.started_at) startedAt = Date.parse(p.started_at);
    }
    if (p.timeline) drawChart(p.timeline);
    drawChannels(p.by_channel || {});
    tick();
  }

  function channelName(code) {
    if (!code) return t.channel_none;
    return t.channel_names[code] || code;  // a platform's code by name, any other channel as typed
  }

  /* A line per channel while more than one sells, largest first (as the server draws it first). */
  function drawChannels(byChannel) {
    var list = $("channels");
    if (!list) return;
    var codes = Object.keys(byChannel).filter(function (c) { return byChannel[c].orders > 0; });
    codes.sort(function (a, b) {
      return (byChannel[b].amount_fen - byChannel[a].amount_fen) || (a < b ? -1 : a > b ? 1 : 0);
    });
    list.hidden = codes.length < 2;
    $("total-panel").classList.toggle("multi-channel", !list.hidden);  // the total gives the line room (app.css)
    var items = list.children;
    codes.forEach(function (code, i) {
      var li = items[i];
      if (!li) { li = L.el("li"); list.appendChild(li); }
      if (li.getAttribute("data-channel") !== code || !li.firstChild) {
        li.setAttribute("data-channel", code);
        li.textContent = "";
        li.appendChild(L.el("span", "ch-name", channelName(code)));
        li.appendChild(document.createTextNode(" "));
        li.appendChild(L.el("strong", "ch-amount", ""));
      }
      setText(li.querySelector(".ch-amount"), L.money(byChannel[code].amount_fen, lang, true));
    });
    while (items.length > codes.length) list.removeChild(list.lastChild);
  }

  /* The session ended while the screen was open: say so where people look. */
  function showEnded() {
    $("host").classList.add("is-ended");
    setText($("total-label"), t.final_sales);
    setText($("chart-title"), t.chart_ended);
    setText($("chart-to"), t.end);
    setText($("feed-title"), t.last_orders);
  }

  /* The chart's minutes: the last CHART_MINUTES up to now; an ended session's last ones, or
   * its whole run when shorter (the same rule as the server's pages._chart). */
  function chartMinutes(timeline) {
    var last = 0;
    timeline.forEach(function (m) { last = Math.max(last, m.minute); });
    var current = Math.max(Math.floor(elapsedSeconds() / 60), last);
    var first = current - CHART_MINUTES + 1;
    if (status === "ended") first = Math.max(0, first);
    return { first: first, current: current };
  }

  function drawChart(timeline) {
    var chart = $("chart");
    var byMinute = {};
    timeline.forEach(function (m) { byMinute[m.minute] = m.amount_fen; });
    var range = chartMinutes(timeline);
    var values = [];
    for (var m = range.first; m <= range.current; m++) values.push([m, byMinute[m] || 0]);
    var max = Math.max.apply(null, values.map(function (v) { return v[1]; }).concat([1]));
    var bars = chart.children;
    while (bars.length > values.length) chart.removeChild(chart.lastChild);
    values.forEach(function (v, i) {
      var bar = bars[i];
      if (!bar) { bar = L.el("span", "bar"); chart.appendChild(bar); }
      bar.style.height = (v[1] * 100 / max).toFixed(1) + "%";
      bar.title = v[0] >= 0 ? v[0] + "′ " + L.money(v[1], lang, false) : "";
      bar.classList.toggle("now", status !== "ended" && v[0] === range.current);
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
    } else if (status === "live") {
      setText($("projection"), "—");
    }
    var state, label;
    if (status === "ended") { state = "ended"; label = t.ended; }
    else if (!connected) { state = "stale"; label = t.reconnecting; }
    else if (status === "live" && now() - lastUpdate > STALE_MS) { state = "stale"; label = t.stale; }
    else if (status === "live") { state = "ok"; label = t.live; }
    else { state = "idle"; label = t.not_started; }
    if (conn.getAttribute("data-state") !== state) conn.setAttribute("data-state", state);
    setText(connLabel, label);
  }

  // Full screen (the TV behind the host): the kiosk layout, as ?kiosk=1 gives it.
  var fsButton = $("fullscreen");
  function kioskLayout() {
    var full = !!document.fullscreenElement;
    document.body.classList.toggle("kiosk", data.kiosk || full);
    fsButton.setAttribute("aria-pressed", full ? "true" : "false");
    setText($("fullscreen-label"), full ? t.exit_full_screen : t.full_screen);
  }
  if (document.fullscreenEnabled && document.documentElement.requestFullscreen) {
    fsButton.hidden = false;
    fsButton.addEventListener("click", function () {
      var done = document.fullscreenElement ? document.exitFullscreen() : document.documentElement.requestFullscreen();
      if (done && done.catch) done.catch(function () { /* refused (no user gesture…): the layout stays */ });
    });
    document.addEventListener("fullscreenchange", kioskLayout);
  }

  // The first paint is the server's (sizes are set here: the page's CSP refuses inline styles).
  drawGoal(shown.amount_fen, shown.goal_fen);
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
      var previous = shown;
      shown = p;
      render(p, previous);
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
        if (p && !(connected && room.joined()) && p.version >= shown.version) {
          var previous = shown;
          shown = p;
          render(p, previous);
        }
      })
      .catch(function () { /* still offline: the next round tries again */ });
  }
  window.setInterval(pollWhileDisconnected, POLL_MS);

  window.setInterval(tick, 1000);
  window.livesaleHost = { socket: socket, shown: function () { return shown; } };
})();
