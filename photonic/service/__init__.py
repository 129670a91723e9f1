"""Running photonic under a service manager: unit files, installation and sd_notify."""
