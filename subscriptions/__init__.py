"""Applications, API keys, plans, subscriptions and the approval workflow."""
