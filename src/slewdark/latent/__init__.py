"""Latent-space analysis: UMAP, Gaussian mixtures, channels, neighbourhoods, diversity, saliency."""
