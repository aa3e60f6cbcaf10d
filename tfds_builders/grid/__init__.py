"""GRID dataset (TFDS builder); importing this package registers `grid`."""
from tfds_builders.grid.grid_dataset_builder import Builder
