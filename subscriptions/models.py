"""Models of subscriptions: applications, API keys, plans, subscriptions and their approval."""
