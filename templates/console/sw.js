/* The order console's service worker (scope /console/): the console opens
 * without a network. Pages under /console/ are fetched from the network
 * first and kept; when the network is down the kept copy is served, with
 * the scripts and styles it needs. Orders are never kept here: the console
 * keeps them in localStorage; their POSTs only pass through to the network.
 */
"use strict";
var CACHE = "livesale-console-v2";
var ASSETS = {{ assets|tojson }};

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) { return cache.addAll(ASSETS); })
    .then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (n) { return n.indexOf("livesale-console-") === 0 && n !== CACHE; })
      .map(function (n) { return caches.delete(n); }));
  }).then(function () { return self.clients.claim(); }));
});

function keepable(request) {
  if (request.method !== "GET") return false;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return false;
  if (request.mode === "navigate") return /^\/console\/\d+$/.test(url.pathname);
  return ASSETS.indexOf(url.pathname) !== -1;
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (!keepable(request)) {
    // The API and the CSRF refresh: straight to the network, never from the cache.
    // (Fetched here rather than left to the browser's fallback, so that every
    // request of a controlled page has one path.)
    if (new URL(request.url).origin === self.location.origin) event.respondWith(fetch(request));
    return;
  }
  event.respondWith(fetch(request).then(function (response) {
    // Only a real page is kept: a redirect to the login page or an error is not.
    if (response.ok && !response.redirected && response.type === "basic") {
      var copy = response.clone();
      caches.open(CACHE).then(function (cache) { cache.put(request.url.split("#")[0], copy); });
    }
    return response;
  }, function () {
    return caches.match(request.url.split("#")[0], { ignoreSearch: request.mode === "navigate" })
      .then(function (hit) { return hit || Response.error(); });
  }));
});
