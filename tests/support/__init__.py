"""Test utilities shared across test directories: origins, a fault-injecting TCP proxy, raw HTTP."""
