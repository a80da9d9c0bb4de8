"""Operator cache policies: schema, loading and validation of policies/*.yaml, matching, reload."""
