// Keyboard rating: digits rate the focused item, arrows/Tab move, Enter submits, S skips,
// U opens the previous post, Z zooms the image. Everything also works as a plain form.
(function () {
  "use strict";
  let shownAt = performance.now();

  function form() { return document.getElementById("rate-form"); }
  function groups() { return Array.from(form().querySelectorAll("fieldset.question")); }
  function items() { return Array.from(form().querySelectorAll("fieldset.item")); }

  function focusGroup(group) {
    if (!group) return;
    const target = group.querySelector("input:checked") || group.querySelector("input");
    target.focus();
    target.closest("fieldset.item").scrollIntoView({ block: "nearest" });
  }

  function currentGroup() {
    const active = document.activeElement;
    return active && active.closest ? active.closest("fieldset.question") : null;
  }

  function moveItem(step) {
    const all = items();
    const group = currentGroup();
    const item = group ? group.closest("fieldset.item") : null;
    const index = item ? all.indexOf(item) : -1;
    const next = all[Math.min(all.length - 1, Math.max(0, index + step))];
    if (!next) return;
    // Keep the same question when moving between items.
    const position = group ? Array.from(item.querySelectorAll("fieldset.question")).indexOf(group) : 0;
    focusGroup(next.querySelectorAll("fieldset.question")[Math.max(0, position)]);
  }

  function rate(digit) {
    const group =
      currentGroup() || groups().find((g) => !g.querySelector("input:checked")) || groups()[0];
    if (!group) return;
    const input = group.querySelector('input[value="' + digit + '"]');
    if (!input) return;
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    const all = groups();
    const rest = all.slice(all.indexOf(group) + 1);
    focusGroup(rest.find((g) => !g.querySelector("input:checked")) || rest[0] || group);
  }

  function submit() {
    const f = form();
    f.querySelector('input[name="seconds"]').value = ((performance.now() - shownAt) / 1000).toFixed(1);
    f.requestSubmit(document.getElementById("submit-button"));
  }

  function click(id) {
    const element = document.getElementById(id);
    if (element) element.click();
  }

  document.addEventListener("keydown", function (event) {
    if (!form() || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target.matches && target.matches("textarea, input[type=text], input[type=search], select")) return;
    const key = event.key;
    if (/^[0-9]$/.test(key)) { rate(key); event.preventDefault(); }
    else if (key === "ArrowDown") { moveItem(1); event.preventDefault(); }
    else if (key === "ArrowUp") { moveItem(-1); event.preventDefault(); }
    else if (key === "Enter" && !(target.matches && target.matches("button, a, summary"))) { submit(); event.preventDefault(); }
    else if (key === "s" || key === "S") { click("skip-button"); event.preventDefault(); }
    else if (key === "u" || key === "U") { click("previous-link"); event.preventDefault(); }
    else if (key === "z" || key === "Z") {
      const zoom = document.querySelector("[data-zoom]");
      if (zoom) zoom.classList.toggle("zoomed");
      event.preventDefault();
    }
  });

  document.addEventListener("submit", function (event) {
    if (event.target.id === "rate-form") {
      const seconds = event.target.querySelector('input[name="seconds"]');
      if (!seconds.value) seconds.value = ((performance.now() - shownAt) / 1000).toFixed(1);
    }
  });

  document.addEventListener("click", function (event) {
    const zoom = event.target.closest && event.target.closest("[data-zoom]");
    if (zoom) { zoom.classList.toggle("zoomed"); event.preventDefault(); }
  });

  function start() {
    shownAt = performance.now();
    if (!form()) return;
    const error = document.getElementById("rate-error");
    focusGroup(groups().find((g) => !g.querySelector("input:checked")) || groups()[0]);
    if (error) error.focus && error.setAttribute("tabindex", "-1");
  }

  document.addEventListener("DOMContentLoaded", start);
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.target.id === "task") start();
  });
})();
