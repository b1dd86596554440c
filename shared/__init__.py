"""The application core: plain Python, no Azure Functions types."""
