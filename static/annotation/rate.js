// The rating page. Keys: digits rate the focused item, arrows/Tab move, Enter submits, S skips
// (after a confirmation: S again or Enter; Esc keeps the post), U opens the previous post, Z zooms
// the image. Answers are kept as a draft per assignment in localStorage until the post is
// submitted, so a reload or Back loses nothing; leaving with answers not submitted asks first.
// Everything also works as a plain form without this script.
(function () {
  "use strict";
  const DRAFT = "distillery:draft:";
  const SUBMITTED = "distillery:submitted";
  const INSTRUCTIONS = "distillery:instructions:";
  const NARROW = "(max-width: 899px)";
  let shownAt = performance.now();
  let initialAnswers = "";
  let submitting = false;
  let focusBeforeSkip = null;

  function form() { return document.getElementById("rate-form"); }
  function layout() { return document.getElementById("rate-layout"); }
  function groups() { return Array.from(form().querySelectorAll("fieldset.question")); }
  function items() { return Array.from(form().querySelectorAll("fieldset.item")); }
  function missingGroups() { return groups().filter((g) => !g.querySelector("input:checked")); }
  function byId(id) { return document.getElementById(id); }

  function stored(key) {
    try { return localStorage.getItem(key); } catch (e) { return null; }
  }
  function store(key, value) {
    try {
      if (value === null) localStorage.removeItem(key); else localStorage.setItem(key, value);
    } catch (e) { /* storage full or refused: the page still works, without drafts */ }
  }

  // --- focus and keys --------------------------------------------------------------------------

  function focusGroup(group, scroll) {
    if (!group) return;
    const target = group.querySelector("input:checked") || group.querySelector("input");
    target.focus({ preventScroll: true });
    if (scroll !== false) target.closest("fieldset.item").scrollIntoView({ block: "nearest" });
  }

  function currentGroup() {
    const active = document.activeElement;
    return active && active.closest ? active.closest("#rate-form fieldset.question") : null;
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
    const group = currentGroup() || missingGroups()[0] || groups()[0];
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
    form().requestSubmit(byId("submit-button"));
  }

  function click(id) {
    const element = byId(id);
    if (element && !element.hidden) element.click();
  }

  document.addEventListener("keydown", function (event) {
    if (!form() || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target.matches && target.matches("textarea, input[type=text], input[type=search], select")) return;
    const key = event.key;
    const confirming = byId("skip-confirm") && !byId("skip-confirm").hidden;
    if (key === "Escape" && confirming) { closeSkip(); event.preventDefault(); }
    else if (key === "s" || key === "S") {
      click(confirming ? "skip-confirm-button" : "skip-button");
      event.preventDefault();
    }
    else if (/^[0-9]$/.test(key)) { rate(key); event.preventDefault(); }
    else if (key === "ArrowDown") { moveItem(1); event.preventDefault(); }
    else if (key === "ArrowUp") { moveItem(-1); event.preventDefault(); }
    else if (key === "Enter" && !(target.matches && target.matches("button, a, summary"))) { submit(); event.preventDefault(); }
    else if (key === "u" || key === "U") { click("previous-link"); event.preventDefault(); }
    else if (key === "z" || key === "Z") {
      const zoom = document.querySelector("[data-zoom]");
      if (zoom) zoom.classList.toggle("zoomed");
      event.preventDefault();
    }
  });

  // --- answers: count, unanswered, draft -------------------------------------------------------

  function answers() {
    const out = {};
    form().querySelectorAll("input[type=radio]:checked").forEach((input) => { out[input.name] = input.value; });
    return out;
  }

  function draftKey() { return DRAFT + layout().dataset.assignment; }

  function saveDraft() {
    store(draftKey(), JSON.stringify({ version: layout().dataset.version, answers: answers() }));
  }

  function restoreDraft() {
    let draft = null;
    try { draft = JSON.parse(stored(draftKey())); } catch (e) { draft = null; }
    if (!draft || typeof draft.answers !== "object") return;
    if (draft.version !== layout().dataset.version) {
      // The post was submitted since this draft was written: what is saved wins.
      store(draftKey(), null);
      return;
    }
    Object.entries(draft.answers).forEach(function ([name, value]) {
      const input = form().querySelector(
        'input[type=radio][name="' + CSS.escape(name) + '"][value="' + CSS.escape(String(value)) + '"]'
      );
      if (input) input.checked = true;
    });
  }

  function dirty() { return form() && JSON.stringify(answers()) !== initialAnswers; }

  function showAnswered() {
    const count = byId("answered-count");
    if (count) count.textContent = String(groups().length - missingGroups().length);
  }

  function showUnanswered(missing) {
    const box = byId("unanswered");
    groups().forEach((g) => g.classList.toggle("missing", missing.includes(g)));
    if (!missing.length) { box.hidden = true; box.replaceChildren(); return; }
    const all = groups();
    const first = missing[0].closest("fieldset.item");
    const number = items().indexOf(first) + 1;
    const text = document.createElement("p");
    text.textContent = missing.length + " of " + all.length + " unanswered.";
    const jump = document.createElement("button");
    jump.type = "button";
    jump.id = "jump-unanswered";
    jump.textContent = "Go to the first unanswered (item " + number + ")";
    box.replaceChildren(text, jump);
    box.hidden = false;
  }

  document.addEventListener("change", function (event) {
    if (!form() || !form().contains(event.target)) return;
    const group = event.target.closest("fieldset.question");
    if (group) group.classList.remove("missing");
    showAnswered();
    if (!byId("unanswered").hidden) showUnanswered(missingGroups());
    saveDraft();
  });

  // --- submitting and skipping -----------------------------------------------------------------

  function openSkip() {
    focusBeforeSkip = document.activeElement;
    byId("skip-confirm").hidden = false;
    byId("skip-button").hidden = true;
    byId("skip-confirm-button").focus();
  }

  function closeSkip() {
    byId("skip-confirm").hidden = true;
    byId("skip-button").hidden = false;
    if (focusBeforeSkip && document.contains(focusBeforeSkip)) focusBeforeSkip.focus();
    else byId("skip-button").focus();
  }

  // Capture: these run before htmx sends the form, and can stop it.
  document.addEventListener("submit", function (event) {
    const target = event.target;
    if (target.id === "rate-form") {
      const missing = missingGroups();
      if (missing.length) {
        event.preventDefault();
        event.stopImmediatePropagation();
        showUnanswered(missing);
        byId("jump-unanswered").focus();
        return;
      }
      const seconds = target.querySelector('input[name="seconds"]');
      if (!seconds.value) seconds.value = ((performance.now() - shownAt) / 1000).toFixed(1);
      submitting = true;
      try { sessionStorage.setItem(SUBMITTED, layout().dataset.assignment); } catch (e) { /* no marker: the draft stays until its version is out of date */ }
    } else if (target.id === "skip-form") {
      const confirmed = event.submitter && event.submitter.id === "skip-confirm-button";
      if (!confirmed && target.elements.confirm.value !== "yes") {
        event.preventDefault();
        event.stopImmediatePropagation();
        openSkip();
        return;
      }
      target.elements.confirm.value = "yes";
      submitting = true;
      store(draftKey(), null);
    }
  }, true);

  document.addEventListener("htmx:afterRequest", function (event) {
    if (!event.detail.successful) {
      submitting = false;
      try { sessionStorage.removeItem(SUBMITTED); } catch (e) { /* nothing to undo */ }
    }
  });

  window.addEventListener("beforeunload", function (event) {
    if (submitting || !dirty()) return;
    event.preventDefault();
    event.returnValue = "";
  });

  // --- clicks ----------------------------------------------------------------------------------

  function setPostCollapsed(collapsed) {
    const post = byId("post");
    const toggle = byId("post-toggle");
    post.classList.toggle("collapsed", collapsed);
    toggle.setAttribute("aria-expanded", String(!collapsed));
    toggle.textContent = collapsed ? "Show post" : "Hide post";
    byId("post-excerpt").hidden = !collapsed;
    updatePostHeight();
  }

  document.addEventListener("click", function (event) {
    const target = event.target;
    if (!target.closest) return;
    const zoom = target.closest("[data-zoom]");
    if (zoom) { zoom.classList.toggle("zoomed"); event.preventDefault(); return; }
    if (target.closest("#post-toggle")) {
      setPostCollapsed(!byId("post").classList.contains("collapsed"));
    } else if (target.closest("#jump-unanswered")) {
      focusGroup(missingGroups()[0]);
    } else if (target.closest("#skip-cancel")) {
      event.preventDefault();
      closeSkip();
    } else if (target.closest("#instructions > summary")) {
      const details = byId("instructions");
      // After the click has opened or closed it: remember the annotator's choice.
      setTimeout(function () {
        store(INSTRUCTIONS + details.dataset.campaign, details.open ? "open" : "closed");
      });
    }
  });

  // --- starting ----------------------------------------------------------------------------------

  function updatePostHeight() {
    const pane = document.querySelector(".post-pane");
    const height = pane && window.matchMedia(NARROW).matches ? pane.offsetHeight : 0;
    document.documentElement.style.setProperty("--post-height", height + "px");
  }

  function startInstructions() {
    const details = byId("instructions");
    if (!details) return;
    const key = INSTRUCTIONS + details.dataset.campaign;
    const state = stored(key);
    // First visit: open (the page renders them open before the first post is done); later
    // visits: collapsed, unless the annotator opened them.
    if (state === null) { if (details.open) store(key, "closed"); }
    else details.open = state === "open";
  }

  function forgetSubmittedDraft() {
    let submitted = null;
    try {
      submitted = sessionStorage.getItem(SUBMITTED);
      sessionStorage.removeItem(SUBMITTED);
    } catch (e) { return; }
    if (!submitted) return;
    // Refused (the same post, with an error): keep its draft. Otherwise it was saved.
    const refused = byId("rate-error") && layout() && layout().dataset.assignment === submitted;
    if (!refused) store(DRAFT + submitted, null);
  }

  function start() {
    shownAt = performance.now();
    submitting = false;
    forgetSubmittedDraft();
    if (!form()) return;
    // Unanswered questions are reported in the page, not by the browser's bubbles.
    form().noValidate = true;
    initialAnswers = JSON.stringify(answers());
    restoreDraft();
    showAnswered();
    startInstructions();
    const toggle = byId("post-toggle");
    if (toggle) toggle.hidden = false;
    updatePostHeight();
    const error = byId("rate-error");
    if (error) { error.focus(); return; }
    // S pressed between the swap and now: the skip question keeps the focus.
    if (byId("skip-confirm") && !byId("skip-confirm").hidden) return;
    // Focus without scrolling: the post stays in view.
    focusGroup(missingGroups()[0] || groups()[0], false);
  }

  window.addEventListener("resize", updatePostHeight);
  document.addEventListener("DOMContentLoaded", start);
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.target.id === "task") start();
  });
  document.addEventListener("htmx:historyRestore", start);
})();
