/* livesale: how money and percentages are written, the browser's copy of livesale/web/formats.py.
 *
 * The one rule (tested against tests/money_cases.json, as the Python is): big figures in whole yuan
 * below ¥10,000, then ¥1.23万 / ¥1.23亿 (zh) or ¥12.35K / ¥1.23M / ¥1.23B (en), always two decimals
 * in a unit; exact amounts ¥83,411.00; differences ▲ +¥1.23万 / ▼ −¥1.23万 / ±¥0. Half-even
 * rounding on integer fen with BigInt (never a float), so the server's first paint and every push agree.
 */
(function () {
  "use strict";

  var MINUS = "\u2212";
  var UNITS = {  // [name, fen per hundredth of the unit, where the next unit starts in hundredths]
    zh: [["万", 10000n, 1000000n], ["亿", 100000000n, null]],
    en: [["K", 1000n, 100000n], ["M", 1000000n, 100000n], ["B", 1000000000n, null]],
  };

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
    var units = UNITS[lang === "en" ? "en" : "zh"];
    for (var i = 0; i < units.length; i++) {
      var h = divide(fen, units[i][1]);
      if (units[i][2] === null || h < units[i][2]) return "¥" + grouped(h / 100n) + "." + cents(h % 100n) + units[i][0];
    }
  }

  function big(fen, lang) {
    var n = int(fen), text = magnitude(abs(n), lang);
    if (!text) return "¥0";
    return n < 0n ? MINUS + text : text;
  }

  function exact(fen) {
    var n = int(fen), a = abs(n);
    var text = "¥" + grouped(a / 100n) + "." + cents(a % 100n);
    return n < 0n ? MINUS + text : text;
  }

  function diff(fen, lang, exactly) {
    var n = int(fen), text;
    if (exactly) {
      if (n === 0n) return "±¥0.00";
      text = exact(abs(n));
    } else {
      text = magnitude(abs(n), lang);
      if (!text) return "±¥0";
    }
    return n > 0n ? "▲ +" + text : "▼ " + MINUS + text;
  }

  function percent(part, whole) {
    var p = int(part), w = int(whole);
    if (w === 0n) return "—";
    var tenths = divide(abs(p) * 1000n, abs(w));
    var negative = (p < 0n) !== (w < 0n) && tenths !== 0n;
    return (negative ? MINUS : "") + grouped(tenths / 10n) + "." + (tenths % 10n).toString() + "%";
  }

  window.LivesaleMoney = { big: big, exact: exact, diff: diff, percent: percent };
})();
