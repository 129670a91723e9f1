"""The read-only WebDAV (RFC 4918, class 1) export of the library under /dav/."""
