"""Portal-wide writes (none yet: each app owns its writes)."""
