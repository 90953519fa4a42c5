"""Catalogue tables (provisioned spaces and rooms)."""
