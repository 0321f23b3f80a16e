"""Admin of gateway (admin actions call services; they never write models directly)."""
