"""Providers, deployments, the AI API catalog, routing, resource policies and the proxy hot path."""
