/* livesale: helpers shared by the pages (no dependencies). */
(function () {
  "use strict";

  var grouping = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  var cents = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  var wanFormat = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

  /* The same as the server's ``money`` filter: ¥60,200.00; short: ¥6.02万 (zh) or ¥60,200. */
  function money(fen, lang, short) {
    var yuan = fen / 100;
    if (short && lang === "zh" && Math.abs(yuan) >= 10000) {
      return "¥" + wanFormat.format(Math.round(yuan / 100) / 100) + "万";
    }
    if (short && Math.abs(yuan) >= 1000 && fen % 100 === 0) {
      return "¥" + grouping.format(Math.trunc(yuan));
    }
    return "¥" + cents.format(yuan);
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
