"""Fakes of vendor services at their network boundary, driven by the vendors' own SDKs in tests."""
