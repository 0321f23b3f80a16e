"""Writes of analytics (`<entity>_<action>` services, keyword-only, atomic, doing their own side effects)."""
