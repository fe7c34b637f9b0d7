"""Feature schema, persona training, ONNX export and the bundled default model (issue 3)."""

__all__: list[str] = []
