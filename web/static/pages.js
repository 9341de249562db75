// Small enhancements only: every page works without this script.
//
// - [data-dialog="id"]: open that <dialog> instead of following the link or submitting
//   (without scripts the link opens a confirmation page, the form a confirmation step).
// - [data-close-dialog]: close the dialog it is in.
// - [data-requires-selection="name"]: refuse to open the dialog until a check box named
//   "name" is ticked; [data-selected-count="name"] shows how many are.
// - [data-select-all="name"]: a check box that ticks them all (shown only with scripts).
// - <body data-refresh-seconds="n">: reload after n seconds, unless a dialog is open or
//   the attribute has been removed meanwhile (then it waits until it is back).
(function () {
  "use strict";

  function checked(name) {
    return document.querySelectorAll('input[type="checkbox"][name="' + name + '"]:checked').length;
  }

  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-dialog]");
    if (opener) {
      var dialog = document.getElementById(opener.getAttribute("data-dialog"));
      if (!dialog || typeof dialog.showModal !== "function") {
        return; // no <dialog> support: the confirmation page does the job
      }
      var needs = opener.getAttribute("data-requires-selection");
      if (needs && checked(needs) === 0) {
        return; // the server answers "select at least one"
      }
      event.preventDefault();
      document.querySelectorAll('[data-selected-count]').forEach(function (el) {
        el.textContent = String(checked(el.getAttribute("data-selected-count")));
      });
      dialog.showModal();
      return;
    }
    var closer = event.target.closest("[data-close-dialog]");
    if (closer) {
      event.preventDefault();
      closer.closest("dialog").close();
    }
  });

  document.querySelectorAll("[data-select-all]").forEach(function (all) {
    var name = all.getAttribute("data-select-all");
    all.hidden = false;
    all.addEventListener("change", function () {
      document.querySelectorAll('input[type="checkbox"][name="' + name + '"]').forEach(function (box) {
        box.checked = all.checked;
      });
    });
  });

  var seconds = Number(document.body.getAttribute("data-refresh-seconds"));
  if (seconds > 0) {
    var reload = function () {
      // Paused while a dialog is open, or while the attribute is taken away (a script
      // that needs the page to hold still, such as a check of the page, removes it).
      if (document.querySelector("dialog[open]") || !document.body.hasAttribute("data-refresh-seconds")) {
        window.setTimeout(reload, seconds * 1000);
      } else {
        window.location.reload();
      }
    };
    window.setTimeout(reload, seconds * 1000);
  }
})();
