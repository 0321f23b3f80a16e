// Site-wide behaviour: copy buttons. A button with data-copy-target="#id" copies that element's text.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy-target]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copyTarget);
  if (!source) return;
  const label = button.innerHTML;
  try {
    await navigator.clipboard.writeText(source.innerText);
    button.innerHTML = '<i class="bi bi-check2"></i> Copied';
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
