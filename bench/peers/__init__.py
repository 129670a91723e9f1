"""The sync tools the benchmark runs on the same data: rsync, Syncthing and photonic itself."""
