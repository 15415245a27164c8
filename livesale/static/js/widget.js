/* The widget: figures from the server's first paint, then live over Socket.IO
 * (join {"widget": key}), a fresh snapshot on every reconnect, polling the
 * public JSON every 5 s when WebSockets cannot get through, "not updated"
 * after 10 s without news, a short celebration at the goal and milestones,
 * and its height told to the embedding page. Text only ever via textContent.
 *
 * A server that already holds as many widget sockets as it may refuses the
 * connection with "poll": the widget then reads the same JSON about once a
 * second for as long as it is open (spread by a random jitter; every 15 s
 * while the page is hidden; slower after errors, up to 30 s). nginx's
 * microcache answers those reads, so they cost the app about one a second.
 */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("w-data").textContent);
  var t = data.i18n, lang = data.lang, key = data.key;
  var shown = data.totals, lastUpdate = Date.now(), connected = false, revoked = false, polling = false;
  var mode = "socket";  // "socket", or "poll" once the server said so (for tests and the curious)
  var root = document.getElementById("w");
  function $(id) { return document.getElementById(id); }
  function set(id, text) { var el = $(id); if (el && el.textContent !== text) el.textContent = text; }
  if (data.accent) document.documentElement.style.setProperty("--accent", data.accent);

  function money(fen) { return window.LivesaleMoney.big(fen, lang); }

  /* The goal bar: filled up to the goal; past it the bar stands for the total, the goal is a mark
   * inside it and the overshoot beyond the mark has its own colour (111.8 %: the mark at 89 %). */
  function goal(p) {
    var w = $("w"), state = "open";
    if (p.goal_fen && p.amount_fen >= p.goal_fen) state = p.amount_fen > p.goal_fen ? "exceeded" : "reached";
    if (w.getAttribute("data-goal") !== state) w.setAttribute("data-goal", state);
    if (!p.goal_fen || !$("w-fill")) return;
    var over = p.amount_fen > p.goal_fen;
    var fill = over ? p.goal_fen * 100 / p.amount_fen : Math.max(0, p.amount_fen) * 100 / p.goal_fen;
    $("w-fill").style.width = fill.toFixed(2) + "%";
    $("w-over").style.width = over ? (100 - fill).toFixed(2) + "%" : "0";
    set("w-pct", window.LivesaleMoney.percent(p.amount_fen, p.goal_fen, lang));
    set("w-done", state === "exceeded" ? t.exceeded : state === "reached" ? t.reached : "");
  }

  function crossed(before, after) {
    if (shown.goal_fen && before < shown.goal_fen && after >= shown.goal_fen) return t.goal;
    var step = shown.milestone_fen;
    if (step > 0 && Math.floor(after / step) > Math.floor(before / step)) {
      return t.milestone.replace("{amount}", money(Math.floor(after / step) * step));
    }
    return null;
  }

  function celebrate(text) {
    set("w-party", text);
    root.classList.remove("party");
    void root.offsetWidth;  // restart the animation
    root.classList.add("party");
    window.setTimeout(function () { root.classList.remove("party"); }, 3000);
  }

  function render(p) {
    var before = shown.amount_fen;
    shown = p;
    set("w-total", money(p.amount_fen));
    if ($("w-total")) $("w-total").setAttribute("data-fen", String(p.amount_fen));
    set("w-orders", String(p.orders));
    set("w-orders-label", p.orders === 1 ? t.order : t.orders);
    if (p.status && root.getAttribute("data-status") !== p.status) root.setAttribute("data-status", p.status);
    goal(p);
    var list = $("w-products");
    if (list && p.products) {
      list.textContent = "";
      p.products.forEach(function (item) {
        var li = document.createElement("li"), name = document.createElement("span"), q = document.createElement("b");
        name.textContent = item.name; q.textContent = String(item.quantity);
        li.appendChild(name); li.appendChild(document.createTextNode(" ")); li.appendChild(q);
        list.appendChild(li);
      });
    }
    var party = crossed(before, p.amount_fen);
    if (party) celebrate(party);
    fit();
  }

  function accept(p) {
    lastUpdate = Date.now();
    if (p && typeof p.version === "number" && p.version >= shown.version) render(p);
    tick();
  }

  /* The orders already listed: a (re)join sends the latest again, which the first paint already shows. */
  var seen = {};
  function orderKey(at, quantity, name) { return at + "|" + quantity + "|" + name; }
  if ($("w-latest")) {
    Array.prototype.forEach.call($("w-latest").children, function (li) { seen[li.getAttribute("data-key")] = true; });
  }

  function addLatest(entries) {
    var list = $("w-latest");
    if (!list) return;
    entries.forEach(function (e) {
      var k = orderKey(e.at_ms, e.quantity, e.name);
      if (seen[k]) return;
      seen[k] = true;
      var li = document.createElement("li");
      li.setAttribute("data-key", k);
      li.textContent = e.quantity + " × " + e.name;
      list.insertBefore(li, list.firstChild);
    });
    while (list.children.length > 5) list.removeChild(list.lastChild);
    fit();
  }

  function tick() {
    var label = "", state = "ok";
    if (revoked) { label = t.off; state = "stale"; }
    else if (shown.status === "ended") { label = t.ended; }
    else if (shown.status === "live" && !connected && !polling) { label = t.offline; state = "stale"; }
    else if (shown.status === "live" && Date.now() - lastUpdate > 10000) { label = t.stale; state = "stale"; }
    set("w-stale", label);
    if (root.getAttribute("data-state") !== state) root.setAttribute("data-state", state);
  }

  var pollEvery = 5000, pollTimer = null, pollErrors = 0, pollRound = 0;
  function pollDelay() {
    var ms = document.hidden ? Math.max(pollEvery, 15000) : pollEvery;
    if (pollErrors) ms = Math.min(30000, ms * Math.pow(2, pollErrors));
    return ms * (0.75 + Math.random() * 0.5);  // readers who opened the page together drift apart
  }
  function poll() {
    var round = pollRound;
    pollTimer = null;
    if (connected || revoked || !polling || !window.fetch) return;
    function next() { if (polling && round === pollRound && !pollTimer) pollTimer = window.setTimeout(poll, pollDelay()); }
    window.fetch("/widget/" + encodeURIComponent(key) + ".json", { credentials: "omit" })
      .then(function (r) {
        if (r.status === 404) { revoked = true; stopPolling(); return null; }
        pollErrors = r.ok ? 0 : Math.min(pollErrors + 1, 5);
        return r.ok ? r.json() : null;
      })
      .then(function (p) {
        if (p) { accept(p); if (p.latest) addLatest(p.latest); } else tick();
        next();
      }, function () { pollErrors = Math.min(pollErrors + 1, 5); tick(); next(); });
  }
  function startPolling(every) {
    if (every) pollEvery = every;
    if (!polling && !revoked) { polling = true; pollRound += 1; poll(); }
  }
  function stopPolling() {
    polling = false;
    if (pollTimer) { window.clearTimeout(pollTimer); pollTimer = null; }
  }
  document.addEventListener("visibilitychange", function () {
    // Back in view: read now rather than at the end of the hidden page's slower wait.
    if (!document.hidden && polling && pollTimer) { window.clearTimeout(pollTimer); pollTimer = null; poll(); }
  });

  function fit() {
    if (window.parent === window) return;
    window.parent.postMessage({ livesaleWidget: key, height: Math.ceil(document.documentElement.scrollHeight) }, "*");
  }

  if (window.io) {
    var socket = window.io("/live", {
      transports: ["websocket"], reconnection: true, reconnectionDelay: 1000, reconnectionDelayMax: 30000,
      reconnectionAttempts: Infinity, withCredentials: false,
    });
    // Every (re)connect joins again (a fresh snapshot); a join refused for a while is tried again.
    window.livesaleJoin(socket, { widget: key }, function (e) {
      if (e && e.code === "not_found") { revoked = true; socket.disconnect(); stopPolling(); tick(); }
    });
    socket.on("connect", function () {
      connected = true;
      stopPolling();
      tick();
    });
    socket.on("disconnect", function () { connected = false; tick(); });
    socket.on("connect_error", function (e) {
      connected = false;
      if (e && e.message === "poll") {
        // The server holds as many widget sockets as it may: read the JSON instead, for good.
        mode = "poll";
        socket.disconnect();
        startPolling(1000);
      } else {
        startPolling();
      }
      tick();
    });
    socket.on("totals", function (p) {
      root.setAttribute("data-joined", "1");  // the room's snapshot came: pushes will follow (tests wait on it)
      accept(p);
    });
    socket.on("orders", addLatest);
    socket.on("revoked", function () { revoked = true; socket.disconnect(); stopPolling(); tick(); });
    window.setTimeout(function () { if (!connected) startPolling(); }, 5000);
  } else {
    startPolling();
  }
  goal(shown);
  window.setInterval(tick, 1000);
  window.addEventListener("resize", fit);
  fit();
  tick();
  window.livesaleWidget = { shown: function () { return shown; }, mode: function () { return mode; } };
})();
