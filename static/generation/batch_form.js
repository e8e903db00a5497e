// The batch form shows only the chosen pipeline's stage menus. The others are hidden and
// disabled, so they are neither tabbed through nor sent; the server ignores them anyway.
(function () {
  const pipeline = document.getElementById("id_pipeline");
  if (!pipeline) return;
  function show() {
    document.querySelectorAll("fieldset[data-pipeline]").forEach(function (group) {
      const chosen = group.dataset.pipeline === pipeline.value;
      group.hidden = !chosen;
      group.disabled = !chosen;
    });
  }
  pipeline.addEventListener("change", show);
  show();
})();
