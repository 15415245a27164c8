/* Ask before a form does something that cannot be undone.
 *
 * A form marked  data-confirm="what will happen"  (with data-confirm-title,
 * data-confirm-ok and data-confirm-cancel for the words, rendered by the
 * page in its language) opens an in-page <dialog> instead of submitting:
 * focus goes to Cancel (the safe choice), Escape or Cancel closes it and
 * nothing is sent, the confirm button sends the form. Focus returns to the
 * button that opened it. Without this script the forms still work.
 */
(function () {
  "use strict";
  var dialog, title, message, ok, cancel, pending = null, opener = null;

  /* "OK" and "Cancel" in the page's language (#ui-text, from base.html) for a form that names neither. */
  function word(key, fallback) {
    var node = document.getElementById("ui-text");
    try { return (node && JSON.parse(node.textContent)[key]) || fallback; } catch (e) { return fallback; }
  }

  function build() {
    dialog = document.createElement("dialog");
    dialog.className = "confirm-dialog";
    dialog.id = "confirm-dialog";
    dialog.setAttribute("aria-labelledby", "confirm-title");
    dialog.setAttribute("aria-describedby", "confirm-message");
    title = document.createElement("h2");
    title.id = "confirm-title";
    message = document.createElement("p");
    message.id = "confirm-message";
    var buttons = document.createElement("div");
    buttons.className = "confirm-buttons";
    cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "confirm-cancel";
    ok = document.createElement("button");
    ok.type = "button";
    ok.className = "danger confirm-ok";
    buttons.appendChild(cancel);
    buttons.appendChild(ok);
    dialog.appendChild(title);
    dialog.appendChild(message);
    dialog.appendChild(buttons);
    document.body.appendChild(dialog);
    cancel.addEventListener("click", function () { dialog.close("cancel"); });
    ok.addEventListener("click", function () {
      var form = pending;
      dialog.close("ok");
      if (form) {
        form.setAttribute("data-confirmed", "1");
        ok.disabled = true;
        form.submit();
      }
    });
    // Escape fires "cancel" and closes: nothing is sent.
    dialog.addEventListener("close", function () {
      if (dialog.returnValue !== "ok") pending = null;
      if (opener && document.contains(opener)) opener.focus();
    });
  }

  function ask(form, submitter) {
    if (!dialog) build();
    pending = form;
    opener = submitter || form.querySelector("[type=submit]");
    title.textContent = form.getAttribute("data-confirm-title") || "";
    title.hidden = !title.textContent;
    message.textContent = form.getAttribute("data-confirm");
    ok.textContent = form.getAttribute("data-confirm-ok") || word("ok", "OK");
    cancel.textContent = form.getAttribute("data-confirm-cancel") || word("cancel", "Cancel");
    ok.disabled = false;
    dialog.returnValue = "";
    dialog.showModal();
    cancel.focus();
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-confirm")) return;
    if (form.getAttribute("data-confirmed") === "1") return;
    event.preventDefault();
    ask(form, event.submitter);
  });

  window.livesaleConfirm = { ask: ask };
})();
