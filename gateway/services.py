"""Writes of gateway (`<entity>_<action>` services, keyword-only, atomic, doing their own side effects)."""
