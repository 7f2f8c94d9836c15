"""The console's pages: one module (with its `router`) per section."""
