// Live dashboard: one message a second over the websocket; polls the JSON endpoint while the socket is down.
(() => {
  const root = document.getElementById("live");
  if (!root) return;
  const status = document.getElementById("live-status");
  const money = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 4 });
  let chart = null;

  const show = (figures) => {
    for (const el of root.querySelectorAll("[data-live]")) {
      const name = el.dataset.live;
      if (name === "spend_today") {
        if (figures.spend_today_micros !== undefined) el.textContent = money.format(figures.spend_today_micros / 1e6);
      } else if (figures[name] !== undefined) {
        el.textContent = figures[name];
      }
    }
    if (window.Chart && figures.series) {
      if (!chart) {
        chart = new Chart(document.getElementById("live-chart"), {
          type: "bar",
          data: { labels: figures.series.map((_, i) => `${figures.series.length - i}s`), datasets: [{ label: "requests", data: figures.series, backgroundColor: "#0d6efd" }] },
          options: { animation: false, plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } },
        });
      } else {
        chart.data.datasets[0].data = figures.series;
        chart.update("none");
      }
    }
    root.dataset.updatedAt = figures.at;
  };
  const mark = (text, tone) => { status.textContent = text; status.className = `badge text-bg-${tone}`; };

  let poller = null;
  const poll = async () => {
    try {
      const response = await fetch(root.dataset.poll, { headers: { accept: "application/json" }, credentials: "same-origin" });
      if (response.ok) show(await response.json());
    } catch { /* offline for a moment: keep the last figures */ }
  };
  const startPolling = () => {
    if (poller) return;
    mark("polling", "warning");
    poll();
    poller = setInterval(poll, 2000);
  };
  const stopPolling = () => { clearInterval(poller); poller = null; };

  const connect = () => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    let socket;
    try { socket = new WebSocket(`${scheme}://${location.host}${root.dataset.socket}`); } catch { startPolling(); return; }
    socket.onopen = () => { stopPolling(); mark("live", "success"); };
    socket.onmessage = (event) => show(JSON.parse(event.data));
    socket.onclose = () => { startPolling(); setTimeout(connect, 5000); };
  };

  const first = document.getElementById("live-first");
  if (first) show(JSON.parse(first.textContent));
  window.addEventListener("load", () => { if (first) show(JSON.parse(first.textContent)); });
  connect();
})();
