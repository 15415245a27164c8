/* The home page: the running totals of the sessions live now, kept moving by the /live push.
 *
 * A Socket.IO connection is in one session's room at a time (a join leaves the
 * previous room), so each live session on the page gets its own connection
 * (at most 12 are listed). Joining goes through live-join.js, which retries a
 * join refused for a while; until a room is joined, its totals are read over
 * HTTP every 5 s, as the host screen does.
 */
(function () {
  "use strict";
  var L = window.Livesale;
  var data = L.pageData("home-data");
  var POLL_MS = 5000;

  function setText(node, text) { if (node && node.textContent !== text) node.textContent = text; }


  function drawBar(card) {
    var bar = card.querySelector('[data-field="bar"]');
    if (!bar) return;
    var value = parseFloat(bar.getAttribute("data-pct")) || 0;
    bar.style.width = Math.min(100, value) + "%";
    bar.classList.toggle("over", value >= 100);
  }

  function render(card, p) {
    var amount = card.querySelector('[data-field="amount"]');
    setText(amount, L.money(p.amount_fen, data.lang, true));
    amount.setAttribute("data-fen", String(p.amount_fen));
    setText(card.querySelector('[data-field="orders"]'), p.orders.toLocaleString("en-US"));
    var goal = card.querySelector('[data-field="goal"]');
    if (goal && p.goal_fen) {
      var text = window.LivesaleMoney.percent(p.amount_fen, p.goal_fen, data.lang);  // the server's rule: half-even
      setText(goal, text);
      // A Uyghur figure starts with a LEFT-TO-RIGHT MARK (money.js), which parseFloat does not skip.
      card.querySelector('[data-field="bar"]').setAttribute("data-pct", String(parseFloat(text.replace(/^\u200e/, ""))));
      drawBar(card);
    }
    if (p.status !== card.getAttribute("data-status")) {
      card.setAttribute("data-status", p.status);
      setText(card.querySelector('[data-field="state"]'), p.status === "ended" ? data.i18n.ended : data.i18n.live);
    }
  }

  function watch(card, id) {
    var version = -1;
    function show(p) {
      if (p && p.session_id === id && p.version >= version) { version = p.version; render(card, p); }
    }
    var socket = window.io("/live", {
      forceNew: true,  // one connection per session: a connection is in one room at a time
      transports: ["websocket"],
      reconnection: true,
      reconnectionDelay: 1000,
      reconnectionDelayMax: 30000,
    });
    var room = window.livesaleJoin(socket, { session: id });
    socket.on("totals", show);
    window.setInterval(function () {
      if ((socket.connected && room.joined()) || card.getAttribute("data-status") === "ended" || !window.fetch) return;
      window.fetch("/api/v1/sessions/" + encodeURIComponent(id) + "/totals",
                   { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (p) { if (!(socket.connected && room.joined())) show(p); })
        .catch(function () { /* offline: the next round tries again */ });
    }, POLL_MS);
    return socket;
  }

  var sockets = {};
  Array.prototype.forEach.call(document.querySelectorAll(".home-card[data-session]"), function (card) {
    drawBar(card);
    var id = parseInt(card.getAttribute("data-session"), 10);
    if (window.io && data.live.indexOf(id) >= 0) sockets[id] = watch(card, id);
  });
  window.livesaleHome = { sockets: sockets };
})();
