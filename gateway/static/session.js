// "Blijf ingelogd": two minutes before her session would end for lack of activity, offer
// to keep it. Every request extends a session, so the button simply makes one (POST
// /sessie, which answers how long the session now lasts). Tabs tell each other through
// localStorage when a page load or the button extended the session. Without JavaScript
// nothing of this shows: the session ends as before and the next page asks for a login.
(function () {
  "use strict";
  var box = document.getElementById("session-warning");
  if (!box || !window.fetch) {
    return;
  }
  var WARN_MS = 2 * 60 * 1000;
  var KEY = "overdracht-session-ends";
  var text = box.querySelector("[data-role=text]");
  var again = box.querySelector("[data-role=again]");
  var form = box.querySelector("form");
  var renewable = box.dataset.renewable === "ja";
  var ends = Date.now() + Number(box.dataset.secondsLeft) * 1000;
  // a request extends the session by this much (idle time; at page load, what is left)
  var idleMs = Number(box.dataset.secondsLeft) * 1000;
  var timers = [];

  function show(message, offerButton, offerLogin) {
    text.textContent = message;
    form.hidden = !offerButton;
    again.hidden = !offerLogin;
    box.hidden = false;
  }

  function warn() {
    show(renewable ? box.dataset.warning : box.dataset.ending, renewable, false);
    if (renewable) {
      form.querySelector("button").focus();
    }
  }

  function expired() {
    timers.forEach(clearTimeout);
    show(box.dataset.expired, false, true);
  }

  function schedule(newEnds) {
    ends = newEnds;
    timers.forEach(clearTimeout);
    box.hidden = true;
    timers = [
      setTimeout(warn, Math.max(ends - WARN_MS - Date.now(), 0)),
      setTimeout(expired, Math.max(ends - Date.now(), 0)),
    ];
  }

  function share(newEnds) {
    try {
      localStorage.setItem(KEY, String(newEnds));
    } catch (ignored) {
      // storage may be off (private windows): each tab then keeps its own time
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { "X-Requested-With": "fetch" },
    })
      .then(
        function (response) {
          if (!response.ok) {
            expired(); // the session had ended: 401
            return;
          }
          return response.json().then(function (state) {
            renewable = state.renewable;
            var newEnds = Date.now() + state.seconds_left * 1000;
            share(newEnds);
            schedule(newEnds);
          });
        },
        function () {
          // no answer (the network): she may try again while there is time
          show(box.dataset.offline, true, false);
        }
      );
  });

  // the page's own scripts made a request (an upload): that extended the session too
  document.addEventListener("overdracht:active", function () {
    if (renewable) {
      var newEnds = Date.now() + idleMs;
      share(newEnds);
      schedule(newEnds);
    }
  });

  window.addEventListener("storage", function (event) {
    if (event.key === KEY && Number(event.newValue) > ends) {
      schedule(Number(event.newValue));
    }
  });

  share(ends);
  schedule(ends);
})();
