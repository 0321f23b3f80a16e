"""Forms of the subscriptions pages."""
