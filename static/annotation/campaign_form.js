// With scripts, the campaign form refreshes its choices as the dataset and batches change (htmx);
// the buttons that do it by hand (.no-js-only) are for browsers without. Runs before the body is
// drawn, so they never flash.
document.documentElement.classList.add("js");
