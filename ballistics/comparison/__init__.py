"""Placeholder: filled by the stage's module."""
