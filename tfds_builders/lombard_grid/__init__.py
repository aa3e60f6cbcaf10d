"""Lombard GRID dataset (TFDS builder); importing registers `lombard_grid`."""
from tfds_builders.lombard_grid.lombard_grid_dataset_builder import Builder
