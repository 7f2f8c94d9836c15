"""HTTP routes of the model server, one module per concern."""
