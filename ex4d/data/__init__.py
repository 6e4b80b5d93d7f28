"""Data: inputs for inference (videos, folders, images, built-in examples) and training datasets."""
