"""The only code that reads the simulator's truth: its reader and the scores against it."""
