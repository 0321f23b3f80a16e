"""Admin of subscriptions (admin actions call services; they never write models directly)."""
