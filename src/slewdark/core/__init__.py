"""Pure functions over arrays and parameters.

Input scaling, tiling, segmentation, background, bright map, metrics and instrument facts.
"""
