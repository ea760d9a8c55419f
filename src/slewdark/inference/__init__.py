"""Prediction with a trained UNet: checkpoint loading, tiled inference, batches, manifest."""
