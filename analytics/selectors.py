"""Reads of analytics that are more than one line."""
