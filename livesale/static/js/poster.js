/* The 战报 poster's "Save as a picture" button:
 *   <button id="poster-save" data-svg="…/poster.svg?lang=zh" data-filename="…-战报.png"
 *           data-working data-done data-failed>
 *
 * Draws the SVG (same origin) on a canvas 1080 px wide with the device's own
 * fonts, so Chinese and Uyghur come out as the phone shows them, and saves it
 * as a PNG. WeChat's browser ignores downloads: the picture on the page is
 * replaced by the PNG, which a long press saves to the phone's album.
 */
(function () {
  "use strict";
  var WIDTH = 1080;

  var button = document.getElementById("poster-save");
  var picture = document.getElementById("poster-image");
  var status = document.getElementById("poster-status");
  if (!button || !picture) return;
  var lastUrl = null;

  function say(text, failed) {
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("error", Boolean(failed));
  }

  function loadSvg(url) {
    return new Promise(function (resolve, reject) {
      var image = new Image();
      image.onload = function () { resolve(image); };
      image.onerror = function () { reject(new Error("the poster did not load")); };
      image.src = url;
    });
  }

  function toPng(image) {
    var ratio = image.naturalHeight / image.naturalWidth;
    var canvas = document.createElement("canvas");
    canvas.width = WIDTH;
    canvas.height = Math.round(WIDTH * ratio);
    canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
    return new Promise(function (resolve, reject) {
      canvas.toBlob(function (blob) {
        if (blob) resolve(blob); else reject(new Error("the picture could not be encoded"));
      }, "image/png");
    });
  }

  function download(url, filename) {
    var link = document.createElement("a");
    link.href = url;
    link.download = filename;
    link.hidden = true;
    document.body.appendChild(link);
    link.click();
    link.remove();
  }

  button.addEventListener("click", function () {
    button.disabled = true;
    say(button.dataset.working || "…", false);
    // Fetched again: a live session's poster shows the figures as of this click.
    loadSvg(button.dataset.svg)
      .then(toPng)
      .then(function (blob) {
        if (lastUrl) URL.revokeObjectURL(lastUrl);
        lastUrl = URL.createObjectURL(blob);
        download(lastUrl, button.dataset.filename || "livesale.png");
        picture.src = lastUrl;
        picture.dataset.png = "true";
        say(button.dataset.done || "", false);
      })
      .catch(function () { say(button.dataset.failed || "", true); })
      .then(function () { button.disabled = false; });
  });
})();
