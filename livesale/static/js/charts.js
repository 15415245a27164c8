/* livesale: charts for the review pages, drawn with the vendored ECharts (static/vendor/echarts).
 *
 * All amounts are integer fen; they are divided by 100 only for display. Load after echarts.common.min.js
 * (and money.js, whose LivesaleMoney.big writes the figures). Pages can call the functions below, or
 * mark elements up and let autoInit draw them:
 *
 *   <div data-chart="cumulative" data-source="cum-data"></div>
 *   <script type="application/json" id="cum-data">[{"name": "…", "values": [0, 6980, …]}]</script>
 */
(function () {
  "use strict";

  var SVG = "svg";  // crisp when printed
  /* The charts' words, translated: base.html renders them in the page's language as JSON (#ui-text);
     the English here only stands in on a page without them. */
  var TEXT = { minutes: "Minutes since start", sales: "Sales", per_minute: "Sales per minute", orders: "Orders",
               minute: "minute {n}", no_data: "No data" };
  (function () {
    var node = document.getElementById("ui-text");
    if (!node) return;
    try {
      var given = JSON.parse(node.textContent);
      Object.keys(TEXT).forEach(function (k) { if (typeof given[k] === "string") TEXT[k] = given[k]; });
    } catch (e) { /* the English stays */ }
  })();
  function minuteLabel(m) { return TEXT.minute.replace("{n}", String(m)); }
  var PALETTE = ["#d9480f", "#1c7ed6", "#2b8a3e", "#f59f00", "#7048e8", "#0c8599", "#c2255c", "#5c940d"];
  var MUTED = "#6e6e73";
  var charts = [];


  function pageLang() {
    var lang = (document.documentElement.lang || "").toLowerCase();
    return lang.indexOf("zh") === 0 ? "zh" : lang.indexOf("ug") === 0 ? "ug" : "en";
  }

  /* Uyghur pages (dir="rtl"): bars of magnitude grow from the right, their names on the right. Time axes
     (the curves, sales per minute) stay left to right in every language, as the live screen's strip does. */
  function rtl() {
    return document.documentElement.dir === "rtl";
  }

  /* ECharts places SVG text for left-to-right lines, so a chart stays direction: ltr (app.css); a label with
     Uyghur in it (¥12.35مىڭ) is isolated right to left inside it, so the unit still follows its number. */
  function label(text) {
    return rtl() && /[\u0600-\u06ff]/.test(text) ? "\u2067" + text + "\u2069" : text;
  }

  function langOf(opts) {
    var lang = opts && opts.lang;
    return lang === "zh" || lang === "ug" || lang === "en" ? lang : pageLang();
  }

  /* ¥1.83万 (zh, from 10,000 yuan), ¥18.30K (en), ¥18.30مىڭ (ug), ¥70: the big form of money.js. */
  function money(fen, lang) {
    return window.LivesaleMoney.big(fen, lang);
  }

  /* Axis ticks: "¥0" rather than "¥0.00" at the origin. */
  function tick(lang) {
    return function (fen) { return fen === 0 ? "¥0" : label(money(fen, lang)); };
  }

  function printing() {
    return !!(window.matchMedia && window.matchMedia("print").matches);
  }

  function fontFamily(el) {
    var style = window.getComputedStyle ? window.getComputedStyle(el) : null;
    return (style && style.fontFamily) || "sans-serif";
  }

  function accent() {
    var style = window.getComputedStyle ? window.getComputedStyle(document.documentElement) : null;
    var value = style ? style.getPropertyValue("--accent").trim() : "";
    return /^#[0-9a-fA-F]{3,8}$/.test(value) ? value : PALETTE[0];
  }

  function int(value) {
    var n = Number(value);
    return isFinite(n) ? Math.round(n) : 0;
  }

  /* Draws ``option`` into ``el`` (reusing a chart already there) and returns the ECharts instance. */
  function draw(el, option, lang, defaultHeight) {
    if (!window.echarts) throw new Error("LivesaleCharts: echarts.common.min.js is not loaded");
    if (!el || el.nodeType !== 1) throw new Error("LivesaleCharts: not an element");
    if (!el.clientHeight && defaultHeight) el.style.height = defaultHeight + "px";
    option.animation = !printing();
    option.color = seriesColors();
    option.textStyle = { fontFamily: fontFamily(el) };
    if (option.tooltip && rtl()) option.tooltip.extraCssText = "direction: rtl; text-align: right;";
    var chart = window.echarts.getInstanceByDom(el);
    if (chart) {
      chart.setOption(option, { notMerge: true });
    } else {
      chart = window.echarts.init(el, null, { renderer: SVG, locale: lang === "zh" ? "ZH" : "EN" });
      chart.on("finished", function () { scalable(el); });
      chart.setOption(option);
      charts.push(chart);
    }
    return chart;
  }

  /* Give the drawn SVG a viewBox, so that print CSS can scale it to the printed column
     (the page is laid out again for paper after "beforeprint" has run). */
  function scalable(el) {
    var svg = el.querySelector("svg");
    if (!svg) return;
    var w = svg.getAttribute("width"), h = svg.getAttribute("height");
    if (w && h) {
      svg.setAttribute("viewBox", "0 0 " + parseFloat(w) + " " + parseFloat(h));
      svg.setAttribute("preserveAspectRatio", "xMinYMin meet");
    }
  }

  function noData() {
    return { text: TEXT.no_data, left: "center", top: "middle",
             textStyle: { color: MUTED, fontSize: 14, fontWeight: "normal" } };
  }

  /* Nothing to draw (a session not started yet): "No data" and bare axes, not ticks of ¥0.01 made up by
     the scale of an empty chart. */
  function empty(option, lang) {
    option.title = noData();
    [option.xAxis, option.yAxis].forEach(function (axis) {
      axis.axisLabel = Object.assign({}, axis.axisLabel, { show: false });
      axis.axisTick = { show: false };
      axis.name = "";
      if (axis.type === "value") { axis.min = 0; axis.max = 1; axis.splitLine = { show: false }; }
    });
    return option;
  }

  /* Series names go in a legend of our own under the chart's caption: it wraps long titles onto more lines
     where ECharts' own legend would page them ("1/3"). */
  function htmlLegend(el, names, colors) {
    var list = el.previousElementSibling;
    if (!list || !list.classList || !list.classList.contains("rlegend")) {
      list = document.createElement("ul");
      list.className = "rlegend";
      el.parentNode.insertBefore(list, el);
    }
    list.textContent = "";
    if (names.length < 2) { list.hidden = true; return; }
    list.hidden = false;
    names.forEach(function (name, i) {
      var item = document.createElement("li");
      var swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.setAttribute("aria-hidden", "true");
      swatch.style.background = colors[i % colors.length];
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(name));
      list.appendChild(item);
    });
  }

  function seriesColors() {
    return [accent()].concat(PALETTE.slice(1));
  }

  /* Room for category names (products, regions): about a third of the chart, at least 5 characters. */
  function labelWidth(el) {
    return Math.max(72, Math.min(200, Math.round((el.clientWidth || 600) * 0.32)));
  }

  function moneyAxis(lang, name) {
    return { type: "value", name: name, nameTextStyle: { color: MUTED, align: "left" },
             axisLabel: { formatter: tick(lang) } };
  }

  function minutesAxis(lang, type) {
    return { type: type, name: TEXT.minutes, nameLocation: "middle", nameGap: 28,
             nameTextStyle: { color: MUTED } };
  }

  /* Escapes text for HTML (exported as LivesaleCharts.escape). */
  function esc(value) {
    return String(value).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  /* A tooltip's content as elements, not HTML: a title, then rows of [colour or null, label, value]. ECharts'
     own marker (p.marker) is HTML with a style attribute, which the pages' policy (style-src 'self') refuses;
     the dot here is coloured through the DOM, which the policy allows. Text is text: nothing to escape. */
  function tip(title, rows) {
    var box = document.createElement("div");
    box.appendChild(document.createTextNode(String(title)));
    rows.forEach(function (r) {
      box.appendChild(document.createElement("br"));
      if (r[0]) {
        var dot = document.createElement("span");
        dot.setAttribute("aria-hidden", "true");
        dot.style.display = "inline-block";
        dot.style.width = dot.style.height = "10px";
        dot.style.borderRadius = "50%";
        dot.style.marginInlineEnd = "5px";
        dot.style.background = r[0];
        box.appendChild(dot);
      }
      box.appendChild(document.createTextNode(r[1] + "\u00a0\u00a0"));
      var value = document.createElement("b");
      value.textContent = r[2];
      box.appendChild(value);
    });
    return box;
  }

  /* Cumulative sales: series = [{name, values: [fen at minute 0, 1, 2, …]}], overlaid; a legend from two on. */
  function cumulative(el, series, opts) {
    var lang = langOf(opts);
    series = series || [];
    var last = 0;
    series.forEach(function (s) { last = Math.max(last, (s.values || []).length); });
    var option = {
      grid: { left: 12, right: 24, top: 32, bottom: 36, containLabel: true },
      legend: { show: false },
      tooltip: {
        trigger: "axis", confine: true,
        formatter: function (params) {
          if (!params.length) return "";
          return tip(minuteLabel(params[0].value[0]), params.map(function (p) {
            return [p.color, p.seriesName, money(p.value[1], lang)];
          }));
        },
      },
      xAxis: minutesAxis(lang, "value"),
      yAxis: moneyAxis(lang, TEXT.sales),
      series: series.map(function (s) {
        return { type: "line", name: String(s.name === undefined ? "" : s.name), showSymbol: false,
                 emphasis: { focus: "series" }, lineStyle: { width: 2 },
                 // values[i] is the total at the end of minute i: drawn at i + 1, from (0, 0).
                 data: [[0, 0]].concat((s.values || []).map(function (v, i) { return [i + 1, int(v)]; })) };
      }),
    };
    option.xAxis.min = 0;
    option.xAxis.max = Math.max(last, 1);
    option.xAxis.minInterval = 1;
    if (!series.some(function (s) { return (s.values || []).length; })) empty(option, lang);
    htmlLegend(el, option.series.map(function (s) { return s.name; }), seriesColors());
    return draw(el, option, lang, 320);
  }

  /* Sales per minute: timeline = [{minute, amount_fen, orders}]; minutes without sales show as gaps. */
  function perMinute(el, timeline, opts) {
    var lang = langOf(opts);
    timeline = timeline || [];
    var byMinute = {}, first = 0, last = -1;
    timeline.forEach(function (m) {
      var minute = int(m.minute);
      byMinute[minute] = m;
      first = Math.min(first, minute);
      last = Math.max(last, minute);
    });
    var minutes = [], data = [];
    for (var minute = first; minute <= last; minute++) {
      var m = byMinute[minute] || {};
      minutes.push(String(minute));
      data.push({ value: int(m.amount_fen), orders: int(m.orders) });
    }
    var option = {
      grid: { left: 12, right: 24, top: 32, bottom: 36, containLabel: true },
      tooltip: {
        trigger: "axis", axisPointer: { type: "shadow" },
        formatter: function (params) {
          var p = params[0];
          if (!p) return "";
          return tip(minuteLabel(p.name), [[p.color, TEXT.sales, money(p.value, lang)],
                                           [null, TEXT.orders, String(p.data.orders)]]);
        },
      },
      xAxis: minutesAxis(lang, "category"),
      yAxis: moneyAxis(lang, TEXT.per_minute),
      series: [{ type: "bar", name: TEXT.per_minute, barCategoryGap: "20%", data: data }],
    };
    option.xAxis.data = minutes;
    if (!data.length) empty(option, lang);
    return draw(el, option, lang, 260);
  }

  function categoryAxis(categories, el) {
    return { type: "category", data: categories, inverse: true,  // the first category on top
             position: rtl() ? "right" : "left", axisTick: { show: false },
             axisLabel: { width: labelWidth(el), overflow: "truncate", interval: 0 } };
  }

  /* The value axis of horizontal bars, and the grid with room for the labels at the bars' far end. */
  function barValueAxis(lang) {
    // hideOverlap: a narrow chart drops a tick label rather than print two on top of each other (¥25.00مىڭ is wide).
    return { type: "value", inverse: rtl(), axisLabel: { formatter: tick(lang), hideOverlap: true } };
  }

  function barGrid() {
    return rtl() ? { left: 72, right: 12, top: 12, bottom: 12, containLabel: true }
                 : { left: 12, right: 72, top: 12, bottom: 12, containLabel: true };
  }

  /* Horizontal bars of items = [{label, amount_fen}], largest on top. */
  function bars(el, items, opts) {
    var lang = langOf(opts);
    var sorted = (items || []).map(function (item, i) {
      return { label: String(item.label === undefined ? "" : item.label), fen: int(item.amount_fen), i: i };
    });
    sorted.sort(function (a, b) { return b.fen - a.fen || a.i - b.i; });
    var option = {
      grid: barGrid(),
      tooltip: {
        trigger: "item",
        formatter: function (p) { return tip(p.name, [[p.color, TEXT.sales, money(p.value, lang)]]); },
      },
      xAxis: barValueAxis(lang),
      yAxis: categoryAxis(sorted.map(function (s) { return s.label; }), el),
      series: [{ type: "bar", name: TEXT.sales, barMaxWidth: 28,
                 label: { show: true, position: rtl() ? "left" : "right",
                          formatter: function (p) { return label(money(p.value, lang)); } },
                 data: sorted.map(function (s) { return s.fen; }) }],
    };
    if (!sorted.length) empty(option, lang);
    el.style.height = Math.max(200, 40 + 32 * sorted.length) + "px";  // a bar each, however many
    return draw(el, option, lang);
  }

  /* Sessions side by side per category: categories = labels, series = [{name, values: [fen per category]}]. */
  function groupedBars(el, categories, series, opts) {
    var lang = langOf(opts);
    categories = (categories || []).map(function (c) { return String(c); });
    series = series || [];
    var option = {
      grid: barGrid(),
      legend: { show: false },
      tooltip: {
        trigger: "axis", axisPointer: { type: "shadow" }, confine: true,
        formatter: function (params) {
          if (!params.length) return "";
          return tip(params[0].name, params.map(function (p) { return [p.color, p.seriesName, money(p.value, lang)]; }));
        },
      },
      xAxis: barValueAxis(lang),
      yAxis: categoryAxis(categories, el),
      series: series.map(function (s) {
        var values = s.values || [];
        return { type: "bar", name: String(s.name === undefined ? "" : s.name), barMaxWidth: 20,
                 emphasis: { focus: "series" },
                 data: categories.map(function (c, i) { return int(values[i]); }) };
      }),
    };
    if (!categories.length) empty(option, lang);
    htmlLegend(el, option.series.map(function (s) { return s.name; }), seriesColors());
    var height = 40 + categories.length * Math.max(1, series.length) * 18 + categories.length * 14;
    el.style.height = Math.max(200, height) + "px";  // room for every session's bar in every category
    return draw(el, option, lang);
  }

  /* A tiny line of fen per minute for a list row: no axes, no tooltip, no interaction. */
  function sparkline(el, values) {
    var option = {
      grid: { left: 1, right: 1, top: 2, bottom: 2 },
      xAxis: { type: "category", show: false, boundaryGap: false,
               data: (values || []).map(function (v, i) { return i; }) },
      yAxis: { type: "value", show: false, min: 0 },
      tooltip: { show: false },
      series: [{ type: "line", showSymbol: false, silent: true, lineStyle: { width: 1.5 }, areaStyle: { opacity: 0.15 },
                 data: (values || []).map(int) }],
    };
    return draw(el, option, pageLang(), 32);
  }

  function resizeAll(instant) {
    charts = charts.filter(function (chart) { return !chart.isDisposed(); });
    charts.forEach(function (chart) {
      chart.resize(instant ? { animation: { duration: 0 } } : undefined);
    });
  }

  var pending = false;
  window.addEventListener("resize", function () {
    if (pending) return;
    pending = true;
    window.requestAnimationFrame(function () { pending = false; resizeAll(false); });
  });
  // Fit the page width (A4) when printing: before the dialog, and again once the print media applies.
  window.addEventListener("beforeprint", function () { resizeAll(true); });
  window.addEventListener("afterprint", function () { resizeAll(true); });
  if (window.matchMedia) {
    var printQuery = window.matchMedia("print");
    var onPrint = function () { resizeAll(true); };
    if (printQuery.addEventListener) printQuery.addEventListener("change", onPrint);
    else if (printQuery.addListener) printQuery.addListener(onPrint);
  }

  var KINDS = {
    "cumulative": function (el, data, opts) { return cumulative(el, data, opts); },
    "per-minute": function (el, data, opts) { return perMinute(el, data, opts); },
    "bars": function (el, data, opts) { return bars(el, data, opts); },
    "grouped-bars": function (el, data, opts) { return groupedBars(el, data.categories, data.series, opts); },
    "sparkline": function (el, data) { return sparkline(el, data); },
  };

  /* Draws every [data-chart] element from the JSON <script> its data-source names; returns the charts. */
  function autoInit(root) {
    var opts = { lang: pageLang() };
    var drawn = [];
    var nodes = (root || document).querySelectorAll("[data-chart]");
    Array.prototype.forEach.call(nodes, function (el) {
      var kind = el.getAttribute("data-chart");
      var sourceId = el.getAttribute("data-source");
      var source = sourceId ? document.getElementById(sourceId) : null;
      try {
        if (!KINDS.hasOwnProperty(kind)) throw new Error("unknown data-chart " + JSON.stringify(kind));
        if (!source) throw new Error("no data-source element " + JSON.stringify(sourceId));
        drawn.push(KINDS[kind](el, JSON.parse(source.textContent), opts));
      } catch (e) {
        if (window.console) window.console.error("LivesaleCharts:", e);
      }
    });
    return drawn;
  }

  window.LivesaleCharts = {
    cumulative: cumulative, perMinute: perMinute, bars: bars, groupedBars: groupedBars, sparkline: sparkline,
    autoInit: autoInit, money: money, escape: esc,
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { autoInit(); });
  } else {
    autoInit();
  }
})();
