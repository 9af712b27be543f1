"""Image providers: one module per provider, all speaking the `ImageProvider` protocol."""
