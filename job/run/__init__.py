"""A run: its start (session), what is left (listing), units in flight (flight), the loop (runner), and `plan`."""
