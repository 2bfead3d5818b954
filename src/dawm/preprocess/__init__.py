"""Pre-processing of structural MRI: bias-field correction, tissue segmentation, image quality."""
