"""The clients service."""
