// Site-wide behaviour: copy buttons. A button with data-copy-target="#id" copies that element's text.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy-target]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copyTarget);
  if (!source) return;
  const label = button.innerHTML;
  try {
    await navigator.clipboard.writeText(source.innerText);
    button.innerHTML = '<i class="bi bi-check2" aria-hidden="true"></i> Copied';
  } catch {
    button.innerHTML = "Press Ctrl+C";
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }
  setTimeout(() => { button.innerHTML = label; }, 2000);
});

// Dates in the viewer's time zone: <time datetime="ISO" data-local-time> is rewritten in local time.
document.querySelectorAll("time[data-local-time]").forEach((el) => {
  const when = new Date(el.getAttribute("datetime"));
  if (!Number.isNaN(when.getTime())) {
    el.textContent = when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    el.title = el.getAttribute("datetime");
  }
});
