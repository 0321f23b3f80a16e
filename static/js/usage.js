// Usage page charts: reads the series the page embeds (#usage-chart), draws them with the vendored Chart.js.
(() => {
  const source = document.getElementById("usage-chart");
  if (!source || !window.Chart) return;
  const data = JSON.parse(source.textContent);
  const hourly = data.labels.length > 1 && (new Date(data.labels[1]) - new Date(data.labels[0])) <= 3600 * 1000;
  const labels = data.labels.map((iso) => {
    const when = new Date(iso);
    return hourly
      ? when.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" })
      : when.toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
  });
  const line = (id, datasets, options = {}) => {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    new Chart(canvas, {
      type: "line",
      data: { labels, datasets: datasets.map((d) => ({ tension: 0.25, pointRadius: 0, borderWidth: 2, ...d })) },
      options: { animation: false, interaction: { mode: "index", intersect: false },
        scales: { y: { beginAtZero: true } }, plugins: { legend: { position: "bottom" } }, ...options },
    });
  };
  line("chart-requests", [
    { label: "Requests", data: data.requests, borderColor: "#0d6efd" },
    { label: "Errors", data: data.errors, borderColor: "#dc3545" },
  ]);
  line("chart-latency", [
    { label: "p50", data: data.p50, borderColor: "#198754" },
    { label: "p95", data: data.p95, borderColor: "#fd7e14" },
  ]);
  line("chart-tokens", [{ label: "Tokens", data: data.tokens, borderColor: "#6f42c1", fill: true }]);
  if (data.spend) line("chart-spend", [{ label: "USD", data: data.spend, borderColor: "#20c997", fill: true }]);
})();
