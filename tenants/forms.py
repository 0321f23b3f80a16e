"""Forms of the tenants pages."""
