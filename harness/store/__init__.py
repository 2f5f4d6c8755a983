"""Files on disk: atomic writes, capped reads, run folders, clean-up and reuse."""
