"""Serving stored content to the dashboard: which content may be served, thumbnails,
downloads and photo details (the application layer behind the web layer's media routes)."""
