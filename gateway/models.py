"""Models of gateway: providers, model deployments, catalog entries, routing and resource policies."""
