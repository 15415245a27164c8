/* livesale: helpers shared by the pages (after money.js, which writes the amounts). */
(function () {
  "use strict";

  /* ¥60,200.00; short: the big form ¥6.02万 (zh) or ¥60.20K (en). The rule is money.js's (load it first). */
  function money(fen, lang, short) {
    return short ? window.LivesaleMoney.big(fen, lang) : window.LivesaleMoney.exact(fen, lang);
  }

  function clock(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    return h + ":" + (m < 10 ? "0" : "") + m + ":" + (s < 10 ? "0" : "") + s;
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function setCsrfToken(token) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) meta.setAttribute("content", token);
  }

  function pageData(id) {
    return JSON.parse(document.getElementById(id).textContent);
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  window.Livesale = { money: money, clock: clock, csrfToken: csrfToken, setCsrfToken: setCsrfToken,
                      pageData: pageData, el: el };
})();
