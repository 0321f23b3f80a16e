"""Reads of subscriptions that are more than one line."""
