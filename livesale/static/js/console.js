/* The order console: record orders through the JSON API, offline-first.
 *
 * Every order gets an idempotency key in the browser and is saved in
 * localStorage as "pending" before it is sent. Pending orders are sent on
 * page load, on the "online" event and every few seconds; the API answers a
 * repeat of the same key and payload with the first result, so an order is
 * counted exactly once however often it is sent (reloads, several tabs).
 */
(function () {
  "use strict";
  var L = window.Livesale;
  var data = L.pageData("console-data");
  var t = data.i18n;
  var lang = data.lang;
  var base = "/api/v1/sessions/" + data.session;
  var KEY = "livesale.console." + data.session + ".orders";
  var REGIONS_KEY = "livesale.console.regions";
  var KEEP_DONE = 30;
  var $ = function (id) { return document.getElementById(id); };
  var products = {};
  data.products.forEach(function (p) { products[p.sku] = p; });
  var totals = data.totals;
  var selected = data.products.length === 1 ? data.products[0].sku : null;
  var flushing = false;
  var inFlight = null;

  function uuid() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    var b = window.crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  // --- storage: always read-modify-write, so several tabs do not lose each other's orders
  function load() {
    try { return JSON.parse(window.localStorage.getItem(KEY)) || []; } catch (e) { return []; }
  }
  function save(list) {
    var done = list.filter(function (o) { return o.state !== "pending"; });
    var drop = done.slice(0, Math.max(0, done.length - KEEP_DONE)).map(function (o) { return o.key; });
    list = list.filter(function (o) { return drop.indexOf(o.key) < 0; });
    window.localStorage.setItem(KEY, JSON.stringify(list));
  }
  function update(key, changes) {
    var list = load();
    list.forEach(function (o) { if (o.key === key) Object.keys(changes).forEach(function (k) { o[k] = changes[k]; }); });
    save(list);
  }

  function regions() {
    try { return JSON.parse(window.localStorage.getItem(REGIONS_KEY)) || []; } catch (e) { return []; }
  }
  function rememberRegion(region) {
    if (!region) return;
    var list = regions().filter(function (r) { return r !== region; });
    list.unshift(region);
    window.localStorage.setItem(REGIONS_KEY, JSON.stringify(list.slice(0, 10)));
    drawRegions();
  }
  function drawRegions() {
    var dl = $("regions");
    dl.textContent = "";
    regions().forEach(function (r) { var o = document.createElement("option"); o.value = r; dl.appendChild(o); });
  }

  // --- drawing
  function showTotals(p) {
    if (!p || (totals && p.version < totals.version)) return;
    totals = p;
    $("c-total").textContent = L.money(p.amount_fen, lang, false);
    $("c-total").setAttribute("data-fen", String(p.amount_fen));
    $("c-orders").textContent = String(p.orders);
    Array.prototype.forEach.call(document.querySelectorAll(".pbtn"), function (btn) {
      var sku = btn.getAttribute("data-sku");
      var cell = btn.querySelector('[data-field="stock"]');
      var stock = products[sku].stock;
      if (!cell || stock === null || stock === undefined) return;
      var left = stock - ((p.by_product[sku] || {}).quantity || 0);
      var text = left < 0 ? t.oversold.replace("{n}", String(-left)) : left === 0 ? t.sold_out : t.left + " " + left;
      if (cell.textContent.replace(/^\u26a0 /, "") === text) return;
      cell.textContent = "";
      if (left <= 0) {
        var sign = L.el("span", null, "\u26a0");  // ⚠: the word says it, the sign catches the eye
        sign.setAttribute("aria-hidden", "true");
        cell.appendChild(sign);
        cell.appendChild(document.createTextNode(" "));
      }
      cell.appendChild(document.createTextNode(text));
      btn.classList.toggle("oversold", left < 0);
      btn.classList.toggle("sold-out", left === 0);
    });
  }

  /* What is left of a product's stock: its stock less what the totals count and what waits to be sent. */
  function stockLeft(sku) {
    var stock = products[sku].stock;
    if (stock === null || stock === undefined) return null;
    var sold = ((totals && totals.by_product[sku]) || {}).quantity || 0;
    var waiting = load().filter(function (o) { return o.state === "pending" && o.body.sku === sku; })
      .reduce(function (n, o) { return n + o.body.quantity; }, 0);
    return { stock: stock, sold: sold + waiting, left: stock - sold - waiting };
  }

  /* An order beyond the stock is asked about first (the platform may have sold it: then it is
   * recorded, the API accepts it); resolves true to record it. */
  function confirmBeyondStock(sku, qty) {
    var s = stockLeft(sku);
    if (s === null || qty <= s.left) return Promise.resolve(true);
    var name = products[sku].name;
    var text = s.left <= 0
      ? t.ask_sold_out.replace("{name}", name).replace("{stock}", s.stock).replace("{sold}", s.sold)
      : t.ask_short.replace("{name}", name).replace("{left}", s.left).replace("{qty}", qty);
    var dialog = $("stock-dialog");
    $("stock-text").textContent = text;
    return new Promise(function (resolve) {
      dialog.addEventListener("close", function closed() {
        dialog.removeEventListener("close", closed);
        resolve(dialog.returnValue === "record");
      });
      dialog.returnValue = "";
      if (dialog.showModal) dialog.showModal(); else dialog.setAttribute("open", "");
      $("stock-cancel").focus();  // the safe answer first
    });
  }

  function drawMine() {
    var list = load();
    var ol = $("mine");
    ol.textContent = "";
    list.slice().reverse().slice(0, 12).forEach(function (o) {
      var p = products[o.body.sku] || { name: o.body.sku };
      var li = L.el("li", "mine-item");
      li.setAttribute("data-state", o.state);
      li.setAttribute("data-key", o.key);
      li.appendChild(L.el("span", "m-what", o.body.quantity + " × " + p.name + (o.body.buyer_region ? " — " + o.body.buyer_region : "")));
      li.appendChild(L.el("span", "m-state", t[o.state] + (o.error ? ": " + o.error : "")));
      ol.appendChild(li);
    });
    var pending = list.filter(function (o) { return o.state === "pending"; }).length;
    var badge = $("pending");
    badge.setAttribute("data-count", String(pending));
    badge.textContent = pending ? t.pending_count.replace("{n}", pending) : "";
  }

  function setNet(message) {
    var net = $("net");
    net.textContent = message || "";
    net.setAttribute("data-state", message ? "offline" : "online");
  }

  // --- sending
  function post(url, key, body) {
    var headers = { "Content-Type": "application/json", "X-CSRFToken": L.csrfToken(), "Accept": "application/json" };
    if (key) headers["Idempotency-Key"] = key;
    return window.fetch(url, { method: "POST", credentials: "same-origin", headers: headers,
                               body: body === undefined ? undefined : JSON.stringify(body) })
      .then(function (resp) {
        return resp.json().catch(function () { return null; }).then(function (json) {
          return { status: resp.status, ok: resp.ok, body: json };
        });
      });
  }

  function refreshCsrf() {
    return window.fetch(data.csrf_url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) { if (j && j.csrf_token) { L.setCsrfToken(j.csrf_token); return true; } return false; })
      .catch(function () { return false; });
  }

  /* Send one pending order; resolves to "ok" (go on) or "retry" (stop; try later). */
  function send(order, retried) {
    inFlight = order.key;
    return post(base + "/orders", order.key, order.body).then(function (r) {
      inFlight = null;
      if (r.ok) {
        update(order.key, { state: "sent", id: r.body.order.id });
        showTotals(r.body.totals);
        setNet("");
        return "ok";
      }
      var err = (r.body && r.body.error) || {};
      if (r.status === 403 && err.code === "csrf" && !retried) {
        return refreshCsrf().then(function (fresh) { return fresh ? send(order, true) : "retry"; });
      }
      if (r.status === 401 || (r.status === 403 && err.code === "csrf")) { setNet(t.login); return "retry"; }
      if (r.status >= 500 || r.status === 429 || r.status === 408) return "retry";
      update(order.key, { state: "failed", error: err.message || String(r.status) });
      return "ok";
    }, function () {
      inFlight = null;
      setNet(t.offline);
      return "retry";
    });
  }

  function flush() {
    if (flushing) return Promise.resolve();
    flushing = true;
    function next() {
      var order = load().filter(function (o) { return o.state === "pending"; })[0];
      if (!order) return Promise.resolve();
      return send(order).then(function (result) { drawMine(); return result === "ok" ? next() : null; });
    }
    return next().then(function () { flushing = false; drawMine(); }, function () { flushing = false; drawMine(); });
  }

  function record(event) {
    event.preventDefault();
    if (!selected) { setNet(t.choose); return; }
    var qty = parseInt($("qty").value, 10);
    if (!(qty >= 1 && qty <= 9999)) { $("qty").focus(); return; }
    var sku = selected;
    confirmBeyondStock(sku, qty).then(function (yes) {
      if (yes) keep(sku, qty);
      else $("submit").focus();
    });
  }

  function keep(sku, qty) {
    var region = $("region").value.trim().slice(0, 64);
    var body = { sku: sku, quantity: qty, channel: "console" };
    if (region) body.buyer_region = region;
    var list = load();
    list.push({ key: uuid(), body: body, state: "pending", at: Date.now() });
    save(list);  // saved before anything is sent: a reload or a crash keeps it
    rememberRegion(region);
    $("qty").value = "1";
    drawMine();
    flush();
  }

  function undo() {
    var list = load().filter(function (o) { return o.state === "pending" || o.state === "sent"; });
    var last = list[list.length - 1];
    if (!last) { setNet(t.nothing_to_undo); return; }
    if (last.state === "pending" && inFlight !== last.key) {
      update(last.key, { state: "cancelled" });  // never sent: nothing to refund
      drawMine();
      return;
    }
    if (last.state !== "sent") return;  // being sent right now: undo it once it is recorded
    post(base + "/orders/" + encodeURIComponent(last.id) + "/refund").then(function (r) {
      if (r.ok) { update(last.key, { state: "refunded" }); showTotals(r.body.totals); }
      else setNet(t.undo_failed);
      drawMine();
    }, function () { setNet(t.undo_failed); });
  }

  function refreshTotals() {
    if (document.hidden) return;
    window.fetch(base + "/totals", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(showTotals, function () {});
  }

  // --- wiring
  Array.prototype.forEach.call(document.querySelectorAll(".pbtn"), function (btn) {
    btn.addEventListener("click", function () {
      selected = btn.getAttribute("data-sku");
      Array.prototype.forEach.call(document.querySelectorAll(".pbtn"), function (b) {
        b.setAttribute("aria-pressed", b === btn ? "true" : "false");
      });
      $("submit").disabled = false;
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll(".step"), function (btn) {
    btn.addEventListener("click", function () {
      var v = (parseInt($("qty").value, 10) || 1) + parseInt(btn.getAttribute("data-step"), 10);
      $("qty").value = String(Math.min(9999, Math.max(1, v)));
    });
  });
  $("order-form").addEventListener("submit", record);
  $("undo").addEventListener("click", undo);
  window.addEventListener("online", function () { setNet(""); flush(); });
  window.addEventListener("offline", function () { setNet(t.offline); });
  window.addEventListener("storage", function (e) { if (e.key === KEY) drawMine(); });
  if (!navigator.onLine) setNet(t.offline);
  drawRegions();
  drawMine();
  flush();
  window.setInterval(function () {
    if (load().some(function (o) { return o.state === "pending"; })) flush();
  }, 5000);
  window.setInterval(refreshTotals, 5000);
  // The page itself opens offline through a service worker (/console/sw.js).
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/console/sw.js", { scope: "/console/" }).catch(function (e) {
      if (window.console) window.console.warn("console: no offline copy:", e && e.message);
    });
  }
  window.livesaleConsole = { flush: flush, load: load };
})();
