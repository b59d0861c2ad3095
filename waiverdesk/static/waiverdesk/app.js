// waiverdesk: the live preview of a request form, focus on a form's problems, bar widths
// and confirmations (no inline style or script anywhere: the Content-Security-Policy
// allows only this file).
(function () {
  "use strict";
  // The browser's time zone, for pages of a person who has not chosen one.
  try {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && !document.cookie.split("; ").includes(`tz=${zone}`)) {
      document.cookie = `tz=${zone}; path=/; max-age=31536000; SameSite=Lax`;
    }
  } catch (e) { /* an old browser: the site's time zone is used */ }
  const summary = document.getElementById("error-summary");
  if (summary) summary.focus();

  function sizeBars(root) {
    for (const bar of root.querySelectorAll("[data-w]")) {
      bar.style.setProperty("--w", `${parseFloat(bar.dataset.w) || 0}%`);
    }
  }
  sizeBars(document);
  // A button or form that asks first: data-confirm="the question".
  document.addEventListener("click", (event) => {
    const asking = event.target.closest("button[data-confirm]");
    if (asking && !window.confirm(asking.dataset.confirm)) event.preventDefault();
  });
  document.addEventListener("submit", (event) => {
    const asking = event.target.closest("form[data-confirm]");
    if (asking && !window.confirm(asking.dataset.confirm)) event.preventDefault();
  });

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
        if (ticket !== latest) return;  // an older answer never overwrites a newer one
        target.innerHTML = html;
        sizeBars(target);
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
