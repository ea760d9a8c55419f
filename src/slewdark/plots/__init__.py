"""Figures of the pipeline stages, as matplotlib Figures (no global pyplot state)."""
