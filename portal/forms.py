"""Forms of the portal pages."""
