"""Simulated Euclid NISP slew darks: previous exposure, persistence, detector and truth."""
