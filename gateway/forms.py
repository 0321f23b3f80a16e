"""Forms of the gateway pages."""
