"""Test doubles of services the tests cannot reach."""
