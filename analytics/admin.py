"""Admin of analytics (admin actions call services; they never write models directly)."""
