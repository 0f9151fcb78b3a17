"""Switchyard's ext_proc filter: configuration, request decisions and rewriting."""
