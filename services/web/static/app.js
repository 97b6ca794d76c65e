// Drive's pages: sign in from the link's fragment, post the forms, keep a board live. No library, no inline code
// (the Content-Security-Policy allows scripts from this origin only).
(function () {
  "use strict";
  var body = document.body;
  var notice = document.getElementById("notice");
  var connection = document.getElementById("connection");
  var live = document.getElementById("live");

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function say(text, refused) {
    if (!notice) return;
    notice.textContent = text || "";
    notice.className = "notice" + (refused ? " refused" : " done");
  }

  // --- sign-in: the token travels in the fragment (never sent to a server); posted once, it becomes an
  // HttpOnly cookie, and leaves the address bar before anything else happens.
  var kind = body.getAttribute("data-signin");
  if (kind) {
    var token = location.hash.slice(1);
    if (token) {
      history.replaceState(null, "", location.pathname + location.search);
      var message = document.getElementById("signin");
      if (message) message.textContent = message.getAttribute("data-waiting");
      fetch("/session", {method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"},
                         body: JSON.stringify({token: token, kind: kind})})
        .then(function (answer) {
          return answer.json().then(function (json) { return {ok: answer.ok, json: json}; });
        })
        .then(function (result) {
          if (result.ok) {
            location.replace(result.json.next || location.pathname);
          } else if (message) {
            message.textContent = result.json.message;
            message.className = "message refused";
          }
        });
    }
    return;
  }

  // --- the sheet: re-fetched from the server (the API's truth), the focused control focused again after.
  var sheet = document.getElementById("sheet");
  var source = body.getAttribute("data-sheet");
  var fetching = false, again = false;

  function refresh() {
    if (!sheet || !source) return;
    if (fetching) { again = true; return; }
    fetching = true;
    var focused = document.activeElement && document.activeElement.id;
    fetch(source, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (answer) { return answer.text(); })
      .then(function (html) {
        sheet.innerHTML = html;
        body.setAttribute("data-refreshed", String(Date.now()));
        if (focused) {
          var back = document.getElementById(focused);
          if (back) back.focus();
        }
      })
      .catch(function () { /* the stream's reconnection fetches again */ })
      .then(function () {
        fetching = false;
        if (again) { again = false; refresh(); }
      });
  }

  // --- the forms: posted with the CSRF token, the answer said in the notice, then the sheet re-fetched.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form.classList || !form.classList.contains("act")) return;
    e.preventDefault();
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    fetch(form.getAttribute("action"), {method: "POST", credentials: "same-origin",
                                        headers: {"X-CSRF-Token": csrf()},
                                        body: new URLSearchParams(new FormData(form))})
      .then(function (answer) {
        return answer.json().then(function (json) { return {ok: answer.ok, json: json}; });
      })
      .then(function (result) { say(result.json.message, !result.ok); },
            function () { say(connection ? connection.textContent : "", true); })
      .then(function () {
        buttons.forEach(function (b) { b.disabled = false; });
        refresh();
      });
  });

  // --- live: a poke per change, the sheet re-fetched; the browser reconnects by itself after a network error
  // (the stream's `retry:`), and here after a refusal too. Every (re)opening re-fetches what may have been missed.
  var stream = body.getAttribute("data-stream");
  function lost(isLost) {
    if (connection) connection.hidden = !isLost;
    if (live) live.hidden = isLost;
    body.setAttribute("data-live", isLost ? "lost" : "open");
  }
  function connect() {
    var events = new EventSource(stream);
    events.addEventListener("hello", function () { lost(false); refresh(); });
    events.addEventListener("changed", refresh);
    events.onerror = function () {
      lost(true);
      if (events.readyState === EventSource.CLOSED) {
        events.close();
        setTimeout(connect, 3000);
      }
    };
  }
  if (stream && window.EventSource) connect();
})();
