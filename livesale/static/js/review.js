/* Review pages: a hint on tables wider than their box (they scroll sideways inside it). */
(function () {
  "use strict";
  function markOverflowing() {
    Array.prototype.forEach.call(document.querySelectorAll(".table-box"), function (box) {
      var scroller = box.querySelector(".table-scroll");
      if (!scroller) return;
      if (scroller.scrollWidth > scroller.clientWidth + 1) box.setAttribute("data-overflowing", "");
      else box.removeAttribute("data-overflowing");
    });
  }
  var pending = false;
  window.addEventListener("resize", function () {
    if (pending) return;
    pending = true;
    window.requestAnimationFrame(function () { pending = false; markOverflowing(); });
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", markOverflowing);
  else markOverflowing();
})();

/* The sessions list: tick 2 to 6 sessions and compare them. */
(function () {
  "use strict";
  var form = document.getElementById("compare-form");
  if (!form) return;
  var button = document.getElementById("compare-button");
  function picked() {
    return Array.prototype.map.call(form.querySelectorAll("input.pick:checked"), function (el) { return el.value; });
  }
  function update() {
    var n = picked().length;
    button.disabled = n < 2 || n > 6;
  }
  form.addEventListener("change", update);
  form.addEventListener("submit", function (event) {
    var ids = picked();
    if (ids.length < 2 || ids.length > 6) { event.preventDefault(); return; }
    document.getElementById("compare-ids").value = ids.join(",");
    // Only ids goes in the URL, not the checkboxes.
    Array.prototype.forEach.call(form.querySelectorAll("input.pick"), function (el) { el.disabled = true; });
    window.setTimeout(function () {
      Array.prototype.forEach.call(form.querySelectorAll("input.pick"), function (el) { el.disabled = false; });
    }, 0);
  });
  update();
})();
