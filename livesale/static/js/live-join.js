/* Joining a live room, shared by the host screen and the widget.
 *
 * The page joins on every (re)connect and the server answers with a fresh
 * snapshot (a "totals" event). A join can be refused for a while — Redis
 * down or rebuilding ("unavailable"), too many joins ("rate_limited"), a
 * server error ("internal") — with the socket still connected: then nothing
 * would ever arrive. Such a join is tried again, after 2 s doubling to 30 s,
 * until totals arrive. Any other refusal (not_found, forbidden…) is final
 * and goes to onRefused.
 */
(function () {
  "use strict";
  var RETRYABLE = { unavailable: true, rate_limited: true, internal: true };
  var FIRST_MS = 2000, MAX_MS = 30000;

  window.livesaleJoin = function (socket, payload, onRefused) {
    var joined = false, timer = null, delay = FIRST_MS;
    function join() {
      timer = null;
      if (socket.connected) socket.emit("join", payload);
    }
    socket.on("connect", function () {
      joined = false;
      delay = FIRST_MS;
      if (timer) { window.clearTimeout(timer); timer = null; }
      join();
    });
    socket.on("disconnect", function () { joined = false; });
    socket.on("totals", function () { joined = true; delay = FIRST_MS; });
    socket.on("error", function (e) {
      var code = e && e.code;
      if (window.console) window.console.warn("live:", code, e && e.message);
      if (RETRYABLE[code]) {
        joined = false;
        if (!timer) { timer = window.setTimeout(join, delay); delay = Math.min(delay * 2, MAX_MS); }
      } else if (onRefused) {
        onRefused(e);
      }
    });
    return { joined: function () { return joined; } };
  };
})();
