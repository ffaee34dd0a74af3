// callroute Office Manager: live updates. Listens to the API's event stream (the page's
// session authenticates it) and, when a shown extension changes, fetches this same page
// again and swaps in the fresh copies of the elements marked data-live-id. No build
// step, no dependency; the pages work without it (a reload shows the same thing).
(function () {
  "use strict";
  var url = document.body.getAttribute("data-events");
  if (!url || !window.EventSource || !window.fetch) { return; }
  var pending = null;

  function shown(ext) {
    return document.querySelector('[data-live-id][data-ext="' + CSS.escape(ext) + '"]');
  }

  function refresh() {
    pending = null;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live-id]").forEach(function (old) {
          var id = old.getAttribute("data-live-id");
          var next = fresh.querySelector('[data-live-id="' + CSS.escape(id) + '"]');
          if (next && next.outerHTML !== old.outerHTML) {
            old.replaceWith(document.importNode(next, true));
          }
        });
      })
      .catch(function () { /* the next event, or a reload, tries again */ });
  }

  var source = new EventSource(url, { withCredentials: true });
  source.onmessage = function (event) {
    var change;
    try { change = JSON.parse(event.data); } catch (e) { return; }
    if (change && typeof change.ext === "string" && (change.ext === "" || shown(change.ext))) {
      if (!pending) { pending = window.setTimeout(refresh, 100); }
    }
  };
})();
