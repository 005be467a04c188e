"""Media -> features: decoding, faces, audio descriptors, the HDF5 feature store.

This package never imports :mod:`emonet`; dependencies flow one way.
"""
