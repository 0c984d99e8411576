"""Domain services between the HTTP handlers and the two storage seams (``Catalog``,
``BlobStore``): workflows that span both, or that keep state of their own. Nothing here knows
about HTTP; handlers parse a request, call one operation, and encode its result."""
