// The worklist refreshes its AI states as jobs finish: it asks for the states only (no PHI), so a
// refresh reads no patient data; a study whose state changed is shown as it is now.
(function () {
  const table = document.querySelector("[data-states-url]");
  if (!table) return;
  async function refresh() {
    if (document.hidden) return;
    const answer = await fetch(table.dataset.statesUrl, { credentials: "same-origin", headers: { Accept: "application/json", "X-Background-Refresh": "1" } });
    if (!answer.ok) return;
    const states = await answer.json();
    for (const row of table.querySelectorAll("tr[data-study]")) {
      const state = states[row.dataset.study];
      if (!state) continue;
      const cell = row.querySelector("[data-cell=state]");
      if (cell.textContent !== state.state) {
        cell.textContent = state.state;
        cell.className = "state-" + state.state.split(" ")[0].replace(":", "");
        row.querySelector("[data-cell=model]").textContent = state.model;
        row.querySelector("[data-cell=findings]").textContent = state.findings;
      }
    }
  }
  setInterval(refresh, 5000);
})();

// A correction's SEG goes as the request's body (not a multipart form, which the server would spool
// to a temporary file: a SEG holds the patient's name), with the CSRF token from its cookie.
(function () {
  for (const form of document.querySelectorAll("form[data-correction-url]")) {
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const file = form.querySelector("input[type=file]").files[0];
      const csrf = (document.cookie.match(/(?:^|; )appliance_csrf=([^;]*)/) || [])[1] || "";
      const answer = await fetch(form.dataset.correctionUrl, {
        method: "POST", credentials: "same-origin", body: file,
        headers: { "Content-Type": "application/dicom", "X-CSRF-Token": decodeURIComponent(csrf), Accept: "application/json" },
      });
      if (answer.ok) { location.reload(); return; }
      const reason = await answer.json().catch(() => ({ detail: answer.statusText }));
      form.querySelector("[data-correction-error]").textContent = "Not stored: " + reason.detail;
    });
  }
})();
