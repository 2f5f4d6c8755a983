"""The host a run is on: its fingerprint, cgroup limits, load from others, CPU peak."""
