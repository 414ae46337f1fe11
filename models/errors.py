"""The two ways user input can be unusable; importing this module loads no model library."""


class ModelError(ValueError):
    """The ONNX file cannot be used (unreadable, no declared input shape, ...)."""


class InputError(ValueError):
    """The input cannot be turned into a model input (unreadable, wrong size, NaN...)."""
