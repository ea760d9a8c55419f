"""Network training shared by the training stages: fit loop, patch and tile datasets, UNet variants."""
