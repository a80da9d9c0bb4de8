"""The bundled demo world: a catalog origin, synthetic users, and a model trained on them."""
