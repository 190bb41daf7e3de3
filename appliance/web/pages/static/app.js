// The worklist refreshes its AI states as jobs finish: it asks for the states only (no PHI), so a
// refresh reads no patient data; a study whose state changed is shown as it is now.
(function () {
  const table = document.querySelector("[data-states-url]");
  if (!table) return;
  async function refresh() {
    if (document.hidden) return;
    const answer = await fetch(table.dataset.statesUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
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
