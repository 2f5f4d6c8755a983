"""Every CPU target timed again beside an independent peer (the vendor's benchmark program or
a plain loop): stage.run_crosscheck, peers, plain_loop."""
