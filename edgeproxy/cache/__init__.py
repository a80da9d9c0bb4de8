"""The sans-IO cache core: RFC 9111 / 5861 / 9213 / 9211 rules with time passed in, no sockets."""
