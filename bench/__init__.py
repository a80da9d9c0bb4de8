"""Load benchmarks for edgeproxy and its peers: ``python -m bench run|compare|report|cachesim``."""
