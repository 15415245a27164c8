/* Copy buttons:  <button data-copy="target-id" data-copied="Copied" data-copy-failed="Press Ctrl+C">
 *
 * Copies the target's value (input, textarea) or text with the Clipboard API;
 * where that is refused (an http:// address, an old browser) the text is
 * selected so Ctrl+C / long-press copies it. The result is said next to the
 * button (role="status") for a few seconds.
 */
(function () {
  "use strict";
  var SHOW_MS = 2500;

  function textOf(target) {
    return "value" in target && typeof target.value === "string" ? target.value : target.textContent;
  }

  function select(target) {
    if (typeof target.select === "function") { target.focus(); target.select(); return; }
    var range = document.createRange();
    range.selectNodeContents(target);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function say(button, text, ok) {
    var status = button.nextElementSibling;
    if (!status || !status.classList.contains("copy-status")) {
      status = document.createElement("span");
      status.className = "copy-status";
      status.setAttribute("role", "status");
      button.insertAdjacentElement("afterend", status);
    }
    status.textContent = text;
    status.classList.toggle("failed", !ok);
    button.classList.toggle("copied", ok);
    window.clearTimeout(button._copyTimer);
    button._copyTimer = window.setTimeout(function () {
      status.textContent = "";
      button.classList.remove("copied");
    }, SHOW_MS);
  }

  function fallback(button, target) {
    select(target);
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
    say(button, copied ? button.getAttribute("data-copied") : button.getAttribute("data-copy-failed"), copied);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (!button) return;
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) return;
    event.preventDefault();
    var text = textOf(target);
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { say(button, button.getAttribute("data-copied"), true); },
        function () { fallback(button, target); }
      );
    } else {
      fallback(button, target);
    }
  });
})();
