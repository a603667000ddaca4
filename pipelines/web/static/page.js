// The page's only script: times in the reader's zone (the UTC text stays in the title), after every
// htmx swap too. Everything works without it; htmx adds "load more" and export progress in place.
(function () {
  "use strict";
  var format = new Intl.DateTimeFormat(undefined, {dateStyle: "medium", timeStyle: "medium"});
  function localise(root) {
    var times = (root || document).querySelectorAll("time[datetime]:not([data-local])");
    for (var i = 0; i < times.length; i++) {
      var moment = new Date(times[i].getAttribute("datetime"));
      if (!isNaN(moment.getTime())) {
        times[i].textContent = format.format(moment);
        times[i].setAttribute("data-local", "1");
      }
    }
  }
  document.addEventListener("DOMContentLoaded", function () { localise(document); });
  document.addEventListener("htmx:afterSwap", function (event) { localise(event.target.parentNode || document); });
})();
