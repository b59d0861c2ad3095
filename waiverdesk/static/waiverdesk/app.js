// waiverdesk: the live preview of a request form, and focus on a form's problems.
(function () {
  "use strict";
  const summary = document.getElementById("error-summary");
  if (summary) summary.focus();

  const form = document.getElementById("request-form");
  const target = document.getElementById("preview");
  if (!form || !target) return;
  let timer = null;
  let latest = 0;

  function refresh() {
    const data = new FormData();
    for (const [name, value] of new FormData(form)) {
      if (!(value instanceof File)) data.append(name, value);
    }
    for (const input of form.querySelectorAll("input[type=file][data-evidence]")) {
      if (input.files.length) data.append("evidence_chosen", input.dataset.evidence);
    }
    const ticket = ++latest;
    fetch(form.dataset.preview, {
      method: "POST",
      body: data,
      headers: { "X-CSRFToken": data.get("csrfmiddlewaretoken") },
      credentials: "same-origin",
    })
      .then((response) => response.text())
      .then((html) => {
        if (ticket === latest) target.innerHTML = html;  // an older answer never overwrites a newer one
      })
      .catch(() => {
        target.textContent = "The preview is not available right now.";
      });
  }

  function soon() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  }
  form.addEventListener("input", soon);
  form.addEventListener("change", soon);
  refresh();
})();
