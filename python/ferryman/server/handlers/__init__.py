"""Request handlers, one module per resource family. They parse, call a service or the catalog,
and encode; the rules live in the services, the catalog and the lifecycle."""
