/* livesale: how money and percentages are written, the browser's copy of livesale/web/formats.py.
 *
 * The one rule (tested against tests/money_cases.json, as the Python is): big figures in whole yuan
 * below ¥10,000, then ¥1.23万 / ¥1.23亿 (zh), ¥12.35K / ¥1.23M / ¥1.23B (en) or ¥12.35مىڭ /
 * ¥1.23مىليون / ¥1.23مىليارد (ug), always two decimals in a unit; exact amounts ¥83,411.00;
 * differences ▲ +¥1.23万 / ▼ −¥1.23万 / ±¥0. In Uyghur (right to left) every figure starts with a
 * LEFT-TO-RIGHT MARK so it reads as one left-to-right unit in Arabic-script text (core/formats.py says
 * why). Half-even rounding on integer fen with BigInt (never a float), so the server's first paint and
 * every push agree.
 */
(function () {
  "use strict";

  var MINUS = "\u2212";
  var LRM = "\u200e";
  var UNITS = {  // [name, fen per hundredth of the unit, where the next unit starts in hundredths]
    zh: [["万", 10000n, 1000000n], ["亿", 100000000n, null]],
    en: [["K", 1000n, 100000n], ["M", 1000000n, 100000n], ["B", 1000000000n, null]],
    ug: [["\u0645\u0649\u06ad", 1000n, 100000n], ["\u0645\u0649\u0644\u064a\u0648\u0646", 1000000n, 100000n],
         ["\u0645\u0649\u0644\u064a\u0627\u0631\u062f", 1000000000n, null]],  // مىڭ، مىليون، مىليارد
  };
  var RTL = { ug: true };

  /* What starts a figure: a LEFT-TO-RIGHT MARK in right-to-left languages, else nothing. */
  function mark(lang) { return RTL[lang] ? LRM : ""; }

  /* n / d rounded half to even, for n >= 0 and d > 0. */
  function divide(n, d) {
    var q = n / d, r = n % d;
    if (2n * r > d || (2n * r === d && q % 2n === 1n)) q += 1n;
    return q;
  }

  function grouped(n) {
    return n.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  function cents(n) {
    return (n < 10n ? "0" : "") + n.toString();
  }

  function abs(n) { return n < 0n ? -n : n; }

  /* Fen as a BigInt; a computed figure that is not whole (a projection) is first rounded to the fen. */
  function int(fen) {
    return BigInt(typeof fen === "number" ? Math.round(fen) : fen);
  }

  /* The big form of |fen| without a sign; "" when it rounds to nothing. */
  function magnitude(fen, lang) {
    var yuan = divide(fen, 100n);
    if (yuan < 10000n) return yuan === 0n ? "" : "¥" + grouped(yuan);
    var units = UNITS[lang === "en" || lang === "ug" ? lang : "zh"];
    for (var i = 0; i < units.length; i++) {
      var h = divide(fen, units[i][1]);
      if (units[i][2] === null || h < units[i][2]) return "¥" + grouped(h / 100n) + "." + cents(h % 100n) + units[i][0];
    }
  }

  function big(fen, lang) {
    var n = int(fen), text = magnitude(abs(n), lang);
    if (!text) return mark(lang) + "¥0";
    return mark(lang) + (n < 0n ? MINUS : "") + text;
  }

  function exact(fen, lang) {
    var n = int(fen), a = abs(n);
    var text = "¥" + grouped(a / 100n) + "." + cents(a % 100n);
    return mark(lang) + (n < 0n ? MINUS : "") + text;
  }

  function diff(fen, lang, exactly) {
    var n = int(fen), text;
    if (exactly) {
      if (n === 0n) return mark(lang) + "±¥0.00";
      text = exact(abs(n));
    } else {
      text = magnitude(abs(n), lang);
      if (!text) return mark(lang) + "±¥0";
    }
    return n > 0n ? "▲ " + mark(lang) + "+" + text : "▼ " + mark(lang) + MINUS + text;
  }

  function percent(part, whole, lang) {
    var p = int(part), w = int(whole);
    if (w === 0n) return "—";
    var tenths = divide(abs(p) * 1000n, abs(w));
    var negative = (p < 0n) !== (w < 0n) && tenths !== 0n;
    return mark(lang) + (negative ? MINUS : "") + grouped(tenths / 10n) + "." + (tenths % 10n).toString() + "%";
  }

  window.LivesaleMoney = { big: big, exact: exact, diff: diff, percent: percent };
})();
