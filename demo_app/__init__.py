"""Kivy demo app that embeds the SDK as an app developer would (issue 6)."""

__all__: list[str] = []
