"""The operator's web console at /ui/: server-rendered pages (Jinja2) over the catalog,
signed in with an API key (a session cookie; ``auth.py``), with the API's roles."""
