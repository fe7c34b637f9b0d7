"""The SDK's version, sent with each upload and compared with a bundle's ``min_sdk_version``."""

SDK_VERSION = "0.1.0"
