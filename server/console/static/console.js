// sluice console: the pages render on the server and read without this
// script; it keeps the open page live by swapping in the fresh main part
// the event stream sends (rendered and escaped by the server).
"use strict";

(function () {
  const page = document.body.dataset.page;
  const live = document.getElementById("live");
  const main = document.getElementById("main");
  if (!page || !live || !main || !window.EventSource) return;
  const setLive = (on) => {
    live.classList.toggle("off", !on);
    live.textContent = on ? "live" : "reconnecting…";
  };
  const es = new EventSource("/events?page=" + encodeURIComponent(page));
  es.addEventListener("open", () => setLive(true));
  es.addEventListener("error", () => {
    setLive(false);
    // A signed-out or expired session cannot reconnect: go to sign-in.
    if (es.readyState === EventSource.CLOSED) location.assign("/login?next=" + encodeURIComponent(location.pathname));
  });
  es.addEventListener("main", (ev) => {
    main.innerHTML = ev.data;
  });
  const flash = document.getElementById("flash");
  if (flash) setTimeout(() => flash.classList.add("fade"), 8000);
})();
