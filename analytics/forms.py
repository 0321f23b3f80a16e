"""Forms of the analytics pages."""
