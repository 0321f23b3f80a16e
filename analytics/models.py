"""Models of analytics: the call log, usage and cost rollups, finance reports and alerts."""
