"""Preference-aligned routing engines: pick the route whose policy fits a conversation."""
