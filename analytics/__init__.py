"""Call log, usage and cost rollups, finance reports, alerts and the live dashboard."""
