"""Request handlers, one module per resource family. They parse, call the catalog or store,
and encode; the rules live in the catalog, lifecycle and storage modules."""
