/* livesale embed: <script src="https://HOST/embed.js" data-widget="KEY" data-theme="light" async></script>
 * Each such script is replaced by an iframe of the widget, kept as tall as its content. */
(function () {
  "use strict";
  var OPTS = ["theme", "lang", "show", "accent"];
  var frames = {};
  function place(script) {
    if (script.getAttribute("data-livesale-done")) return;
    script.setAttribute("data-livesale-done", "1");
    var key = script.getAttribute("data-widget");
    if (!key) return;
    var base = script.src.replace(/\/embed\.js(\?.*)?$/, "");
    var query = [];
    OPTS.forEach(function (name) {
      var value = script.getAttribute("data-" + name);
      if (value) query.push(name + "=" + encodeURIComponent(value));
    });
    var frame = document.createElement("iframe");
    frame.src = base + "/widget/" + encodeURIComponent(key) + (query.length ? "?" + query.join("&") : "");
    frame.title = script.getAttribute("data-title") || "livesale";
    frame.setAttribute("scrolling", "no");
    frame.setAttribute("loading", "lazy");
    frame.setAttribute("referrerpolicy", "no-referrer");
    frame.style.cssText = "border:0;width:100%;height:120px;overflow:hidden;background:transparent;display:block";
    frame.setAttribute("allowtransparency", "true");
    script.parentNode.insertBefore(frame, script.nextSibling);
    (frames[key] = frames[key] || []).push(frame);
  }
  window.addEventListener("message", function (event) {
    var d = event.data;
    if (!d || typeof d.livesaleWidget !== "string" || typeof d.height !== "number") return;
    (frames[d.livesaleWidget] || []).forEach(function (frame) {
      if (frame.contentWindow === event.source) frame.style.height = Math.min(Math.max(d.height, 40), 2000) + "px";
    });
  });
  function scan() {
    var scripts = document.querySelectorAll("script[data-widget]");
    for (var i = 0; i < scripts.length; i++) place(scripts[i]);
  }
  scan();
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", scan);
})();
