// The session form (templates/manage/session_form.html): product rows added and removed, and the
// "other platform" field shown only when it is chosen. Rows are named products-<i>-<field> like a
// WTForms FieldList; after a removal the rows are numbered again so the names stay 0, 1, 2, …
(function () {
  "use strict";
  var form = document.getElementById("session-form");
  if (!form) return;
  var rows = document.getElementById("product-rows");
  var template = document.getElementById("product-row-template");
  var ATTRS = ["id", "name", "for", "aria-describedby"];

  function renumber() {
    var items = rows.querySelectorAll("[data-row]");
    items.forEach(function (row, i) {
      row.querySelectorAll("*").forEach(function (el) {
        ATTRS.forEach(function (attr) {
          var value = el.getAttribute(attr);
          if (value) el.setAttribute(attr, value.replace(/products-(\d+|__i__)-/g, "products-" + i + "-"));
        });
      });
      var number = row.querySelector("[data-row-number]");
      if (number) number.textContent = String(i + 1);
    });
  }

  document.getElementById("add-product").addEventListener("click", function () {
    var index = rows.querySelectorAll("[data-row]").length;
    var holder = document.createElement("ol");
    holder.innerHTML = template.innerHTML.replace(/__i__/g, String(index));
    var row = holder.querySelector("[data-row]");
    rows.appendChild(row);
    renumber();
    var first = row.querySelector("input");
    if (first) first.focus();
  });

  rows.addEventListener("click", function (event) {
    var button = event.target.closest("[data-remove]");
    if (!button) return;
    var row = button.closest("[data-row]");
    var next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    renumber();
    var focus = next ? next.querySelector("input:not([readonly])") : document.getElementById("add-product");
    if (focus) focus.focus();
  });

  var platform = form.querySelector("[data-platform]");
  var other = form.querySelector("[data-platform-other]");
  function showOther() {
    other.hidden = platform.value !== "other";
  }
  if (platform && other) {
    platform.addEventListener("change", function () {
      showOther();
      if (!other.hidden) other.querySelector("input").focus();
    });
    showOther();
  }

  var summary = document.getElementById("form-errors");
  if (summary) summary.focus();
})();
