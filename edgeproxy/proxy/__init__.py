"""The I/O shell: aiohttp server and client around the sans-IO cache core."""
