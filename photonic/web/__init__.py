"""The server's web layer: aiohttp on the daemon's loop, /healthz, /metrics and the JSON API."""
