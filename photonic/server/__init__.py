"""The photonic server: receives photos, stores each content once, catalogs every version."""
