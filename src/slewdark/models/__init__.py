"""Neural networks of the pipeline: autoencoders (:mod:`.ae`) and the segmentation UNet."""
