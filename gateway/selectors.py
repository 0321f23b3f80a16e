"""Reads of gateway that are more than one line."""
